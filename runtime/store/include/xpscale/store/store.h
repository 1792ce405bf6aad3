#pragma once
// Store: the sweep's results, read and written through one interface
// (class Store below) whatever the engine; SQLite (sqlite_store.h) keeps
// them in one file, out_dir/xpscale.db.
//
// Written only by the coordinator (rank 0); read by `xpscale report`,
// `xpscale export` and by a resumed run. A committed transaction survives
// the process being killed; the coordinator commits a finished trial
// before its group gets new work, and batches metric rows between trial
// ends.
//
// What is kept (SQLite's tables; another engine keeps the same rows; all
// times are Unix seconds, all JSON is text):
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
// Every failing engine call throws StoreError naming the store and the
// engine's own message.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "xpscale/config/sweep_config.h"
#include "xpscale/core/error.h"
#include "xpscale/sharding/digest.h"  // sha256_hex: the config hash
#include "xpscale/store/shared_sweep.h"

namespace xpscale {

class StoreError : public Error {
 public:
  // `transient`: the same call may succeed later (the store is busy or
  // locked by another process, the disk is full, an I/O error): worth
  // retrying (retrying_store.h). Other errors (corruption, schema, a
  // constraint) are not.
  explicit StoreError(const std::string& what, bool transient = false,
                      ErrorCategory category = ErrorCategory::kStore)
      : Error(what, category), transient_(transient) {}
  bool transient() const noexcept { return transient_; }

 private:
  bool transient_ = false;
};

// A store that stayed unavailable (transient errors) for longer than the
// run's --store-retry: the run ends with kExitStoreUnavailable; what was
// committed is intact and a rerun resumes.
class StoreUnavailable : public StoreError {
 public:
  explicit StoreUnavailable(const std::string& what)
      : StoreError(what, false, ErrorCategory::kUnavailable) {}
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

// What the runtime needs of a sweep's store. Engines implement it:
// SqliteStore (sqlite_store.h, the embedded default) and PostgresStore
// (postgres_store.h); both pass the same suite, tests/unit/store_test.cpp
// (StoreTest, run over every engine in its kEngines).
//
// One writer: the coordinator of the run (rank 0) holds the store open
// read-write; `xpscale report`/`export` open it read-only. A trial is
// claimed for an attempt by start_attempt() (its status becomes running)
// and released by finish_attempt(), interrupt_attempt() or, after a crash,
// mark_interrupted(). Writes made between begin() and commit() become
// durable together; a write outside a transaction is durable on return.
// The reason of an attempt that mark_interrupted() found running: the run
// ended (killed, crashed, lost a rank) without recording it. Such attempts
// count against a trial's retries on resume (run.cpp), so a trial that
// crashes its rank cannot crash every resumed run.
inline constexpr const char* kRunEndedReason =
    "the run ended while this attempt ran (killed, crashed or lost)";

class Store {
 public:
  enum class Mode { kReadWrite, kReadOnly };
  virtual ~Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Where the store lives, for messages: a file path or a URL without its
  // secrets.
  virtual std::string location() const = 0;

  // Explicit transactions; writes outside one commit on their own. begin()
  // inside a transaction and commit() outside one do nothing.
  virtual void begin() = 0;
  virtual void commit() = 0;
  // Drops the open transaction's writes, if any; never throws (the engine
  // may already have rolled back after an error).
  virtual void rollback() noexcept = 0;
  virtual bool in_transaction() const = 0;

  // The sweep's one row; nullopt in a new store.
  virtual std::optional<SweepRow> sweep() const = 0;
  virtual void write_sweep(const SweepRow& row) = 0;

  // A new run of this store; returns its number (1, 2, ...).
  virtual std::int64_t begin_run(int world_size, int groups, int ranks_per_trial,
                                 const std::string& hosts, bool resumed, double now) = 0;
  virtual void end_run(std::int64_t run, const std::string& status, const nlohmann::json& summary,
                       double now) = 0;

  // Every trial, by id.
  virtual std::vector<TrialRow> trials() const = 0;
  virtual std::optional<TrialRow> trial(std::uint64_t id) const = 0;
  // The attempts of one trial, or of every trial, by (trial, attempt).
  virtual std::vector<AttemptRow> attempts(
      std::optional<std::uint64_t> trial = std::nullopt) const = 0;
  // Adds a queued trial, or, when id exists, replaces its params and resets
  // it to queued (used by --force for trials whose params changed).
  virtual void put_queued_trial(std::uint64_t id, const nlohmann::ordered_json& params) = 0;
  // Replaces a trial's params and nothing else (PBT's exploit changes them
  // between attempts; its metrics and best value stay).
  virtual void set_trial_params(std::uint64_t id, const nlohmann::ordered_json& params) = 0;
  // The saved state of a searcher or scheduler, by name ("searcher",
  // "scheduler"), written in the transaction of the results it reflects.
  virtual void put_state(const std::string& name, const nlohmann::json& state) = 0;
  // nullopt when none was saved. Throws StoreError for text that is not JSON.
  virtual std::optional<nlohmann::json> state(const std::string& name) const = 0;
  // Claims a trial for an attempt: the trial becomes running on `group`.
  virtual void start_attempt(std::uint64_t trial, int attempt, std::int64_t run, int group,
                             const std::string& ranks, const std::string& hosts, double now) = 0;
  // Ends an attempt with status completed|stopped|failed. The trial takes
  // that status when `final`, else it goes back to queued (a retry).
  virtual void finish_attempt(std::uint64_t trial, int attempt, TrialStatus status,
                              const std::string& reason, const std::string& stderr_tail, double now,
                              bool final) = 0;
  // Attempts left running by a killed run become "interrupted" with reason
  // kRunEndedReason, their trials queued, and runs left "running" become
  // "killed"; returns how many trials were requeued.
  virtual int mark_interrupted(double now) = 0;
  // Ends an attempt that was preempted (coordinator/preemption.h) as
  // "interrupted" — or, with `lost`, as "lost": its rank stopped answering —
  // and queues its trial again, so that the next run resumes it.
  virtual void interrupt_attempt(std::uint64_t trial, int attempt, const std::string& reason,
                                 double now, bool lost = false) = 0;
  // One report. `value` is the sweep metric's value in it, if any; the
  // trial's best is updated for `goal`.
  virtual void add_metrics(std::uint64_t trial, int attempt, std::int64_t step, double time,
                           std::optional<double> value, const nlohmann::json& values,
                           Goal goal) = 0;
  // The metric rows of one trial, or of every trial, by (trial, attempt, step).
  // Without with_values each row's `values` is null: the report reads a
  // million rows this way without parsing a million JSON objects.
  virtual std::vector<MetricRow> metrics(std::optional<std::uint64_t> trial = std::nullopt,
                                         bool with_values = true) const = 0;

  // Many jobs on one sweep (shared_sweep.h): the engine's protocol for it,
  // or null when one writer holds the store (SQLite).
  virtual SharedSweep* shared() { return nullptr; }

  // One JSON object per line: the sweep, then each trial with its attempts
  // and (with_metrics) its metric rows. The same for every engine: it reads
  // through the functions above.
  void export_jsonl(std::ostream& out, bool with_metrics) const;

 protected:
  Store() = default;
};

// Opens the store at `path` (an SQLite file, see sqlite_store.h), creating
// it in kReadWrite mode. Throws StoreError if it cannot be opened or is not
// a store.
std::unique_ptr<Store> open_store(const std::filesystem::path& path,
                                  Store::Mode mode = Store::Mode::kReadWrite);

// A sweep whose results live in a PostgreSQL store (postgres_store.h) keeps
// the store's URL, without its password, and the sweep's name in
// out_dir/xpscale.store (JSON), so that the commands that take an out_dir
// (report, dashboard, export, status, stop) find it.
struct StorePointer {
  std::string url;    // postgresql://..., no password
  std::string sweep;  // the sweep's name in that store
};
std::filesystem::path store_pointer_path(const std::filesystem::path& out_dir);
// nullopt when out_dir has no xpscale.store. Throws UserError for one that
// cannot be read or is not what write_store_pointer() writes.
std::optional<StorePointer> read_store_pointer(const std::filesystem::path& out_dir);
// Writes out_dir/xpscale.store whole (a temporary file renamed over it).
// Throws StoreError when it cannot.
void write_store_pointer(const std::filesystem::path& out_dir, const StorePointer& pointer);

// Every store of out_dir, opened in `mode`: the PostgreSQL sweep its
// xpscale.store names, else its SQLite files (store_paths). Empty when it
// has none. Throws StoreError for a store that cannot be opened.
std::vector<std::unique_ptr<Store>> open_out_dir_stores(const std::filesystem::path& out_dir,
                                                        Store::Mode mode = Store::Mode::kReadOnly);

}  // namespace xpscale
