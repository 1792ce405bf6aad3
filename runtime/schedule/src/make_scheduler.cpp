// make_scheduler: the config's scheduler: or early_terminate: key, with
// the defaults docs/config.md lists.
#include "xpscale/schedule/scheduler.h"

namespace xpscale {
namespace {

AshaOptions asha_options(const SweepConfig& config, const SchedulerSpec& s) {
  AshaOptions o;
  o.min_resource = s.min_resource.value_or(1);
  o.eta = s.eta.value_or(3);
  if (s.max_resource)
    o.max_resource = *s.max_resource;
  else if (config.max_steps)
    o.max_resource = static_cast<double>(*config.max_steps);
  else
    throw ConfigError(
        {{s.where, "scheduler.max_resource", "scheduler '" + s.type + "' needs 'max_resource'",
          "the resource (e.g. epochs) a trial that is never stopped trains for"}});
  if (o.max_resource <= o.min_resource)
    throw ConfigError({{s.where, "scheduler.max_resource",
                        "max_resource must be greater than min_resource (" +
                            std::to_string(o.min_resource) + ")"}});
  return o;
}

}  // namespace

std::unique_ptr<Scheduler> make_scheduler(const SweepConfig& config) {
  if (!config.scheduler && !config.early_terminate) return nullptr;
  const SourceLocation where =
      config.scheduler ? config.scheduler->where : config.early_terminate->where;
  const std::string key = config.scheduler ? "scheduler" : "early_terminate";
  if (!config.metric)
    throw ConfigError({{where, key, "'" + key + "' needs a 'metric' to compare trials by",
                        "add metric: {name: ..., goal: minimize|maximize}"}});
  if (config.early_terminate) {
    const auto& et = *config.early_terminate;
    WandbHyperbandOptions o;
    o.bands = wandb_hyperband_bands(et);
    o.eta = et.eta;
    o.strict = et.strict;
    if (o.bands.empty())
      throw ConfigError({{et.where, "early_terminate",
                          "max_iter / eta^k is below 1 for every k <= s: no band to stop at"}});
    return make_wandb_hyperband_scheduler(o);
  }
  const auto& s = *config.scheduler;
  if (s.type == "asha") {
    AshaOptions o = asha_options(config, s);
    o.pause = s.promotion == "pause";
    return make_asha_scheduler(o);
  }
  if (s.type == "hyperband") {
    HyperbandOptions o;
    o.asha = asha_options(config, s);
    o.brackets = static_cast<int>(s.brackets.value_or(3));
    o.seed = config.seed;
    return make_hyperband_scheduler(o);
  }
  if (s.type == "median") {
    MedianOptions o;
    o.grace_period = static_cast<double>(s.grace_period.value_or(0));
    o.min_samples = static_cast<int>(s.min_samples.value_or(3));
    return make_median_scheduler(o);
  }
  if (s.type == "pbt") {
    PbtOptions o;
    o.interval = static_cast<double>(s.interval.value_or(1));
    o.quantile = s.quantile.value_or(0.25);
    o.resample_probability = s.resample_probability.value_or(0.25);
    o.seed = config.seed;
    return make_pbt_scheduler(o, config.parameters);
  }
  throw ConfigError({{s.where, "scheduler.type", "unknown scheduler type '" + s.type + "'"}});
}

}  // namespace xpscale
