#pragma once
// The command line of an external trial, built the W&B way.
//
// config.command is a list of words with macros, default
//   ${env} ${interpreter} ${program} ${args}
// ${env}             /usr/bin/env
// ${interpreter}     python3 (Debian has no `python`)
// ${program}         config.program
// ${args}            one word per parameter: --name=value
// ${args_no_hyphens} one word per parameter: name=value
// ${args_json}       one word: the parameters as a JSON object
// ${args_json_file}  one word: the path of a file holding that object
// Macros are whole words; any other ${...} is a ConfigError. Values are
// formatted as W&B formats them: strings as is, numbers in their shortest
// exact form, booleans True/False, lists and maps as JSON.
#include <string>
#include <vector>

#include "xpscale/config/parameter.h"
#include "xpscale/config/sweep_config.h"

namespace xpscale {

// The macros above, without "${" "}".
const std::vector<std::string>& command_macros();

// The argv of one trial. args_json_file is the path to substitute for
// ${args_json_file}; the caller writes the file.
std::vector<std::string> build_command(const SweepConfig& config, const Params& params,
                                       const std::string& args_json_file);

// One parameter value as W&B puts it on a command line.
std::string format_arg_value(const nlohmann::ordered_json& value);

// A word quoted for display in a POSIX shell (only where needed).
std::string shell_quote(const std::string& word);

}  // namespace xpscale
