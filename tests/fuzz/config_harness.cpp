#include "config_harness.h"

#include <cstdlib>

#include "xpscale/config/command.h"
#include "xpscale/config/sweep_config.h"
#include "xpscale/core/error.h"
#include "xpscale/search/searcher.h"

namespace xpscale::fuzz {

bool check_config_text(const std::string& text) {
  try {
    const SweepConfig config = parse_sweep_config(text, "fuzz.yaml");
    for (const auto& d : config.unbuilt) (void)d.where;
    for (const auto& w : config.warnings) (void)w.format_warning();
    // Strict mode: the same text, every warning an error (or none).
    if (!config.warnings.empty()) {
      bool refused = false;
      try {
        (void)parse_sweep_config(text, "fuzz.yaml", {.strict = true});
      } catch (const ConfigError&) {
        refused = true;
      }
      if (!refused) std::abort();  // a warning that strict mode let through
    }
    auto searcher = make_searcher(config);
    // Plan a bounded number of trials whatever the config says.
    const std::uint64_t n = trial_limit(config, *searcher, 8).value_or(8);
    for (std::uint64_t i = 0; i < n; ++i) {
      auto params = searcher->suggest(i);
      if (!params) break;
      (void)params->dump();
      if (config.is_external()) {
        (void)build_command(config, *params, {"params.json", "python"});
        (void)nested_params(config, *params);
      }
    }
    return true;
  } catch (const UserError&) {
    return false;
  }
}

}  // namespace xpscale::fuzz
