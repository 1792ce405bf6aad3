#pragma once
// The command line of an external trial, built the way W&B's agent builds it
// (wandb/sdk/launch/sweeps/utils.py and wandb_agent.py).
//
// config.command is a list of words with macros, default
//   ${env} ${interpreter} ${program} ${args}
// Word macros (a word that is exactly the macro):
//   ${args}                   --name=value, one word per parameter
//   ${args_no_hyphens}        name=value
//   ${args_no_boolean_flags}  --name=value, but --name for true and nothing for false
//   ${args_no_equals}         two words per parameter: --name value
//   ${args_append_hydra}      +name=value (Hydra: add the key)
//   ${args_override_hydra}    ++name=value (Hydra: add or override)
// Text macros (replaced anywhere in a word):
//   ${env}             /usr/bin/env
//   ${interpreter}     `python` where it is on PATH, else `python3` (the
//                      caller resolves it on the node: find_interpreter())
//   ${program}         config.program
//   ${args_json}       the parameters as one JSON object (Python's json.dumps)
//   ${args_json_file}  the path of a file holding that object
//   ${envvar:NAME}     the environment variable NAME; as W&B, NAME itself
//                      when it is not set
// Any other ${...} is refused by the config loader.
//
// Values are written as W&B writes them, with Python's str(): strings as is,
// True/False, None, numbers in their shortest exact form, lists and dicts as
// Python prints them ([1, 2], {'lr': 0.1}). Parameters are in sorted order,
// as W&B's service sends them. A nested parameter is one argument holding a
// dict (--optimizer={'lr': 0.1, 'name': 'adam'}), as under W&B; with
// `nested_args: dotted` each leaf is its own argument (--optimizer.lr=0.1),
// in config order.
#include <optional>
#include <string>
#include <vector>

#include "xpscale/config/parameter.h"
#include "xpscale/config/sweep_config.h"

namespace xpscale {

// The macros above, without "${" "}" (envvar as "envvar:NAME").
const std::vector<std::string>& command_macros();

// How the words of one trial are filled in on the node that starts it.
struct CommandContext {
  std::string args_json_file;          // substituted for ${args_json_file}
  std::string interpreter = "python";  // substituted for ${interpreter}
};

// The argv of one trial. The caller writes the ${args_json_file} file
// (with args_json()).
std::vector<std::string> build_command(const SweepConfig& config, const Params& params,
                                       const CommandContext& context);

// The trial's parameters as W&B's config holds them: nested parameters as
// nested objects (by the config's nesting, so a name with a dot inside a
// nested block stays one key), keys sorted as W&B sorts them.
nlohmann::ordered_json nested_params(const SweepConfig& config, const Params& params);

// ${args_json}: the object W&B would pass (nested_params, or the flat dotted
// names with `nested_args: dotted`) as Python's json.dumps writes it.
std::string args_json(const SweepConfig& config, const Params& params);

// One parameter value as W&B puts it on a command line: Python's str().
std::string format_arg_value(const nlohmann::ordered_json& value);

// Whether the config's command uses ${interpreter}.
bool uses_interpreter(const SweepConfig& config);

// The word for ${interpreter} with this PATH: "python" if an executable
// python is on it (what W&B's agent runs), else "python3"; nullopt if
// neither is.
std::optional<std::string> find_interpreter(const std::string& path_env);

// A word quoted for display in a POSIX shell (only where needed).
std::string shell_quote(const std::string& word);

}  // namespace xpscale
