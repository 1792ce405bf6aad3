#pragma once
// Store: the sweep's results in one SQLite file (out_dir/xpscale.db).
//
// Written only by the coordinator (rank 0); read by `xpscale report`,
// `xpscale export` and by a resumed run. WAL journal with
// synchronous=NORMAL: a committed transaction survives the process being
// killed; the coordinator commits a finished trial before its group gets new
// work, and batches metric rows between trial ends.
//
// Tables (all times are Unix seconds, all JSON is text):
//   sweep     one row: name, config path/text/sha256, metric, goal, planned
//   runs      one row per `xpscale run` of this store (world, groups, hosts)
//   trials    id, params, status, attempts, group, ranks, hosts, times of
//             the last attempt, reason, stderr tail, last/best metric
//   attempts  one row per attempt of a trial (run, group, times, outcome)
//   metrics   (trial, attempt, step, time, metric value, all values)
//   algorithm_state  name ("searcher", "scheduler") -> JSON state of an
//             adaptive searcher or a scheduler, written in the transaction
//             of the results it reflects, so a resume restores it exactly
//
// Every failing SQLite call throws StoreError naming the file and SQLite's
// message.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "xpscale/runtime/error.h"
#include "xpscale/runtime/sweep_config.h"
#include "xpscale/sharding/digest.h"  // sha256_hex: the config hash

namespace xpscale {

class StoreError : public Error {
 public:
  using Error::Error;
};

// queued: not started, or to run again (retry, interrupted by a crash).
// running: an attempt is in progress. completed: the train function
// returned. stopped: ended early by a Stop decision (target, max_steps,
// scheduler) — a result like completed. failed: failed for good.
enum class TrialStatus { kQueued, kRunning, kCompleted, kStopped, kFailed };
std::string_view trial_status_name(TrialStatus s);
// Throws StoreError for an unknown name.
TrialStatus parse_trial_status(std::string_view name);
inline bool is_final(TrialStatus s) {
  return s == TrialStatus::kCompleted || s == TrialStatus::kStopped || s == TrialStatus::kFailed;
}

struct SweepRow {
  std::string name, config_path, config_text, config_hash;
  std::string metric;  // empty when the config has none
  Goal goal = Goal::kMinimize;
  std::uint64_t planned = 0;
  double created_at = 0, updated_at = 0;
};

struct TrialRow {
  std::uint64_t id = 0;
  nlohmann::ordered_json params;
  TrialStatus status = TrialStatus::kQueued;
  int attempts = 0;
  std::optional<int> group;
  std::string ranks, hosts;  // "0,1" and "node1,node1"
  std::optional<double> started_at, finished_at;
  std::string reason, stderr_tail;
  std::optional<std::int64_t> last_step;
  std::optional<double> best_value;  // best value of the sweep's metric
  std::optional<std::int64_t> best_step;
  nlohmann::json last_metrics;  // null when none
};

struct AttemptRow {
  std::uint64_t trial = 0;
  int attempt = 0;
  std::int64_t run = 0;
  int group = 0;
  std::string ranks, hosts;
  double started_at = 0;
  std::optional<double> finished_at;
  std::string status;  // running | completed | stopped | failed | interrupted
  std::string reason, stderr_tail;
};

struct MetricRow {
  std::uint64_t trial = 0;
  int attempt = 0;
  std::int64_t step = 0;
  double time = 0;
  std::optional<double> value;  // the sweep metric, when reported
  nlohmann::json values;
};

// The store's file inside out_dir: xpscale.db, or for task k of a job
// array of task_count > 0 tasks, xpscale.task<k>.db.
std::filesystem::path store_path(const std::filesystem::path& out_dir, int task = 0,
                                 int task_count = 0);
// Every store file in out_dir: xpscale.db and the array tasks' ones, in
// task order. Empty when there is none.
std::vector<std::filesystem::path> store_paths(const std::filesystem::path& out_dir);

class Store {
 public:
  enum class Mode { kReadWrite, kReadOnly };
  // Opens the store, creating the file and its tables in kReadWrite mode.
  // Throws StoreError if the file cannot be opened or is not a store.
  explicit Store(const std::filesystem::path& path, Mode mode = Mode::kReadWrite);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::filesystem::path& path() const { return path_; }

  // Explicit transactions; writes outside one commit on their own.
  void begin();
  void commit();
  bool in_transaction() const { return in_tx_; }

  std::optional<SweepRow> sweep() const;
  void write_sweep(const SweepRow& row);

  // A new run of this store; returns its number (1, 2, ...).
  std::int64_t begin_run(int world_size, int groups, int ranks_per_trial, const std::string& hosts,
                         bool resumed, double now);
  void end_run(std::int64_t run, const std::string& status, const nlohmann::json& summary,
               double now);

  std::vector<TrialRow> trials() const;
  std::optional<TrialRow> trial(std::uint64_t id) const;
  std::vector<AttemptRow> attempts(std::optional<std::uint64_t> trial = std::nullopt) const;
  // Adds a queued trial, or, when id exists, replaces its params and resets
  // it to queued (used by --force for trials whose params changed).
  void put_queued_trial(std::uint64_t id, const nlohmann::ordered_json& params);
  // Replaces a trial's params and nothing else (PBT's exploit changes them
  // between attempts; its metrics and best value stay).
  void set_trial_params(std::uint64_t id, const nlohmann::ordered_json& params);
  // The saved state of a searcher or scheduler (see algorithm_state above).
  void put_state(const std::string& name, const nlohmann::json& state);
  // nullopt when none was saved. Throws StoreError for text that is not JSON.
  std::optional<nlohmann::json> state(const std::string& name) const;
  void start_attempt(std::uint64_t trial, int attempt, std::int64_t run, int group,
                     const std::string& ranks, const std::string& hosts, double now);
  // Ends an attempt with status completed|stopped|failed. The trial takes
  // that status when `final`, else it goes back to queued (a retry).
  void finish_attempt(std::uint64_t trial, int attempt, TrialStatus status,
                      const std::string& reason, const std::string& stderr_tail, double now,
                      bool final);
  // Attempts left running by a killed run become "interrupted" and their
  // trials queued; returns how many.
  int mark_interrupted(double now);
  // Ends an attempt that was preempted (preemption.h) as "interrupted" and
  // queues its trial again, so that the next run resumes it.
  void interrupt_attempt(std::uint64_t trial, int attempt, const std::string& reason, double now);
  // One report. `value` is the sweep metric's value in it, if any; the
  // trial's best is updated for `goal`.
  void add_metrics(std::uint64_t trial, int attempt, std::int64_t step, double time,
                   std::optional<double> value, const nlohmann::json& values, Goal goal);
  std::vector<MetricRow> metrics(std::optional<std::uint64_t> trial = std::nullopt) const;

  // One JSON object per line: the sweep, then each trial with its attempts
  // and (with_metrics) its metric rows.
  void export_jsonl(std::ostream& out, bool with_metrics) const;

 private:
  class Db;
  std::filesystem::path path_;
  std::unique_ptr<Db> db_;
  bool in_tx_ = false;
};

}  // namespace xpscale
