#pragma once
// Trial: what an in-process training function sees of the sweep.
//
// A Trial is handed to the train function on every rank of the trial's
// group. Its parameters, id and checkpoint directory are the same on every
// rank; comm() reduces across the group. Everything here is safe to call
// from the thread that runs the train function; nothing else.
//
//   void train(xpscale::Trial& trial) {
//     const double lr = trial.param<double>("lr");
//     for (std::int64_t epoch = trial.resume_step() + 1; epoch <= 10; ++epoch) {
//       ... trial.comm().allreduce(...) ...
//       if (trial.report(epoch, {{"loss", loss}}) == xpscale::Decision::kStop) break;
//     }
//   }
//
// A train function that throws marks the trial failed with the exception's
// message; the sweep goes on. A rank that throws while its peers wait
// inside a collective of comm() leaves them to that collective's timeout
// (collectives::Options::timeout).
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "xpscale/collectives/communicator.h"
#include "xpscale/config/sweep_config.h"
#include "xpscale/coordinator/checkpoint_dir.h"
#include "xpscale/core/error.h"
#include "xpscale/search/searcher.h"
#include "xpscale/sharding/loader.h"

namespace xpscale {

enum class Decision { kContinue, kStop };

// A train function asked for something its trial does not have: a missing
// parameter, a parameter of another type, report() from a non-leader in
// leader-only mode.
class TrialError : public Error {
 public:
  explicit TrialError(const std::string& what) : Error(what, ErrorCategory::kTrial) {}
};

// Thrown by a train function (or an external-trial runner) to fail the
// trial with a reason and the tail of its error output, both recorded in
// the store.
class TrialFailed : public Error {
 public:
  TrialFailed(const std::string& reason, std::string stderr_tail)
      : Error(reason, ErrorCategory::kTrial), stderr_tail_(std::move(stderr_tail)) {}
  const std::string& stderr_tail() const { return stderr_tail_; }

 private:
  std::string stderr_tail_;
};

namespace detail {
// The runtime's side of a trial; implemented by the group worker.
class TrialChannel {
 public:
  virtual ~TrialChannel() = default;
  // Collective over the group: the leader forwards (step, metrics) to the
  // coordinator and every rank gets the same decision.
  virtual Decision report(std::int64_t step, const nlohmann::json& metrics,
                          std::string& reason) = 0;
  // Leader only, not collective.
  virtual Decision report_as_leader(std::int64_t step, const nlohmann::json& metrics,
                                    std::string& reason) = 0;
};
[[noreturn]] void throw_param_error(std::uint64_t trial, std::string_view name,
                                    const Params& params, std::string_view wanted);
}  // namespace detail

// The metrics a trial with a loader reports besides its own (Trial::report).
inline constexpr const char* kLoaderStallMetric = "loader/stall_fraction";
inline constexpr const char* kLoaderRateMetric = "loader/bytes_per_s";

class Trial {
 public:
  struct Info {
    std::uint64_t id = 0;
    int attempt = 1;  // 1 for the first run, 2 for the first retry, ...
    Params params;
    std::filesystem::path trial_dir;       // out_dir/trials/<id>
    std::filesystem::path checkpoint_dir;  // trial_dir/checkpoint
    int group = 0, group_rank = 0, group_size = 1;
    int world_rank = 0, local_rank = 0, local_size = 1;
    std::vector<std::string> hosts;  // host of each group rank
    std::optional<double> time_limit_s;
    std::map<std::string, DatasetSpec> data;  // the config's data: splits
  };
  Trial(Info info, collectives::Communicator& comm, detail::TrialChannel& channel);

  std::uint64_t id() const { return info_.id; }
  int attempt() const { return info_.attempt; }
  // All parameters: dotted name -> JSON value, in config order.
  const Params& params() const { return info_.params; }
  bool has_param(std::string_view name) const;
  // The parameter `name` (dotted for nested parameters) as T: bool,
  // integral, floating point, std::string or nlohmann::json. An integral T
  // accepts a float value only if it is a whole number. Throws TrialError
  // naming the trial, the parameter and both types, with a did-you-mean.
  template <class T>
  T param(std::string_view name) const;

  // The group's communicator (created once per group, reused across trials).
  collectives::Communicator& comm() { return *comm_; }
  int group() const { return info_.group; }
  int group_rank() const { return info_.group_rank; }
  int group_size() const { return info_.group_size; }
  bool is_leader() const { return info_.group_rank == 0; }
  // This rank among the ranks of its node, for choosing devices.
  int local_rank() const { return info_.local_rank; }

  // Records the leader's metrics at `step` (numbers; other values are
  // kept as JSON) and returns the sweep's decision: Stop when the metric
  // reached metric.target, when step >= max_steps, when the trial passed
  // resources.time_limit, or when a scheduler stops it. Collective over the
  // group: every rank calls it with the same step and gets the same answer;
  // non-leaders' metrics are not recorded (reduce them first). A trial
  // that made a loader() also reports its figures, as kLoaderStallMetric
  // and kLoaderRateMetric (the report's timeline shows them).
  Decision report(std::int64_t step, const nlohmann::json& metrics);
  // Why the last report() said Stop ("target", "max_steps", "time_limit",
  // "preempted", a scheduler's reason); empty after Continue.
  const std::string& stop_reason() const { return stop_reason_; }
  // The same as report() but only on the leader and not collective, for
  // runners that coordinate their group themselves (external trials).
  Decision report_as_leader(std::int64_t step, const nlohmann::json& metrics);

  // A directory that belongs to this trial, the same across retries and
  // resumed sweeps. Created on the first call (not for every trial: a
  // mkdir per trial and rank dominated the cost of short trials).
  const std::filesystem::path& checkpoint_dir() const;
  // The step of the last checkpoint_saved() of an earlier attempt of this
  // trial, or -1 when there is none (start from scratch).
  std::int64_t resume_step() const { return resume_step_; }
  // Says that checkpoint_dir() now holds a complete checkpoint of `step`:
  // a later attempt's resume_step() returns it. Call on the leader after
  // writing the files (other ranks may call it too; it is idempotent).
  // Atomic: written to a temporary file and renamed.
  void checkpoint_saved(std::int64_t step);

  // The sharded loader of split `split` ("train", "val") of the config's
  // data: section, for this rank of the group; created on the first call,
  // which is collective (every rank of the group calls it, in the same
  // order of splits). global_batch is the samples per step over the whole
  // group (0: one per rank); a resumed trial needs the same value to
  // continue on another group size. When an earlier attempt saved a
  // checkpoint, the loader continues from the state saved with it.
  // checkpoint_saved() saves the state of every loader made so far.
  // Throws TrialError if the config has no such split, ShardingError if
  // the data cannot be read.
  ShardedLoader& loader(const std::string& split, std::uint64_t global_batch = 0);
  bool has_data(const std::string& split) const { return info_.data.contains(split); }

  // Writes one line to stderr tagged "[trial <id>.<attempt> r<group rank>]".
  void log(std::string_view message) const;

  const Info& info() const { return info_; }

 private:
  Info info_;
  collectives::Communicator* comm_;
  detail::TrialChannel* channel_;
  std::string stop_reason_;
  std::int64_t resume_step_ = -1;
  mutable bool checkpoint_dir_made_ = false;
  std::map<std::string, std::unique_ptr<ShardedLoader>> loaders_;
  nlohmann::json with_loader_stats(const nlohmann::json& metrics) const;
};

template <class T>
T Trial::param(std::string_view name) const {
  const auto it = info_.params.find(std::string(name));
  if (it == info_.params.end()) detail::throw_param_error(info_.id, name, info_.params, "");
  const auto& v = *it;
  if constexpr (std::is_same_v<T, bool>) {
    if (v.is_boolean()) return v.get<bool>();
    detail::throw_param_error(info_.id, name, info_.params, "a boolean");
  } else if constexpr (std::is_integral_v<T>) {
    if (v.is_number_integer()) {
      if (v.is_number_unsigned()) {
        const auto u = v.get<std::uint64_t>();
        if (u <= static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
          return static_cast<T>(u);
      } else {
        const auto i = v.get<std::int64_t>();
        if (std::in_range<T>(i)) return static_cast<T>(i);
      }
      detail::throw_param_error(info_.id, name, info_.params, "an integer in range");
    }
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (d == static_cast<double>(static_cast<std::int64_t>(d)) &&
          std::in_range<T>(static_cast<std::int64_t>(d)))
        return static_cast<T>(d);
    }
    detail::throw_param_error(info_.id, name, info_.params, "an integer");
  } else if constexpr (std::is_floating_point_v<T>) {
    if (v.is_number()) return v.get<T>();
    detail::throw_param_error(info_.id, name, info_.params, "a number");
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (v.is_string()) return v.get<std::string>();
    detail::throw_param_error(info_.id, name, info_.params, "a string");
  } else if constexpr (std::is_same_v<T, nlohmann::json>) {
    return nlohmann::json(v);
  } else {
    static_assert(!sizeof(T),
                  "Trial::param<T>: T must be bool, integral, floating, string or json");
  }
}

}  // namespace xpscale
