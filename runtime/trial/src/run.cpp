// run_sweep: builds the groups, prepares the store, starts the coordinator
// on rank 0 and runs every rank's group loop (protocol.h).
#include "xpscale/trial/run.h"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "group_worker.h"
#include "xpscale/collectives/device.h"
#include "xpscale/collectives/mpi_check.h"
#include "xpscale/config/canonical_config.h"
#include "xpscale/coordinator/coordinator.h"
#include "xpscale/coordinator/groups.h"
#include "xpscale/coordinator/preemption.h"
#include "xpscale/coordinator/protocol.h"
#include "xpscale/coordinator/stop_request.h"
#include "xpscale/schedule/scheduler.h"
#include "xpscale/search/searcher.h"
#include "xpscale/store/postgres_store.h"
#include "xpscale/store/retrying_store.h"
#include "xpscale/store/sqlite_store.h"
#include "xpscale/store/store.h"

namespace xpscale {
namespace {

namespace fs = std::filesystem;
using detail::CoordinatorSetup;
using detail::QueuedTrial;

int world_rank() {
  int r = 0;
  XPSCALE_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &r));
  return r;
}

// Broadcasts rank 0's string to every rank.
void bcast_string(std::string& s) {
  std::uint64_t n = s.size();
  XPSCALE_MPI_CHECK(MPI_Bcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD));
  s.resize(n);
  if (n) XPSCALE_MPI_CHECK(MPI_Bcast(s.data(), static_cast<int>(n), MPI_CHAR, 0, MPI_COMM_WORLD));
}

// Runs `step` on rank 0 and makes every rank throw what it threw: a
// UserError stays a UserError (ConfigError keeps its text), so all ranks
// fail the same way and none waits for a partner that has given up.
template <class F>
void on_rank0_for_all(F&& step) {
  std::string error;
  int kind = 0;  // 0 ok, 1 ConfigError, 2 UserError, 3 other
  std::exception_ptr original;
  if (world_rank() == 0) {
    try {
      step();
    } catch (const ConfigError& e) {
      kind = 1, error = e.what(), original = std::current_exception();
    } catch (const UserError& e) {
      kind = 2, error = e.what();
    } catch (const std::exception& e) {
      kind = 3, error = e.what();
    }
  }
  XPSCALE_MPI_CHECK(MPI_Bcast(&kind, 1, MPI_INT, 0, MPI_COMM_WORLD));
  if (kind == 0) return;
  bcast_string(error);
  if (original) std::rethrow_exception(original);  // rank 0 keeps the diagnostics' type
  if (kind == 1 || kind == 2) throw UserError(error);
  throw Error(error);
}

std::vector<std::string> gather_hosts() {
  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int len = 0;
  XPSCALE_MPI_CHECK(MPI_Get_processor_name(name, &len));
  int size = 0;
  XPSCALE_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
  std::vector<char> all(static_cast<std::size_t>(size) * MPI_MAX_PROCESSOR_NAME);
  XPSCALE_MPI_CHECK(MPI_Allgather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all.data(),
                                  MPI_MAX_PROCESSOR_NAME, MPI_CHAR, MPI_COMM_WORLD));
  std::vector<std::string> hosts;
  for (int r = 0; r < size; ++r)
    hosts.emplace_back(all.data() + static_cast<std::size_t>(r) * MPI_MAX_PROCESSOR_NAME);
  return hosts;
}

std::string join(const std::vector<std::string>& v, const char* sep = ",") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

}  // namespace

// --store, else the config's store:, else XPSCALE_STORE; "" for out_dir's
// SQLite file. Anything but a PostgreSQL URL is refused, shown without
// its password.
std::string chosen_store_url(const std::optional<std::string>& flag, const SweepConfig& config) {
  // The config's text is kept with the sweep: a password in its store:
  // is refused even when --store overrides it.
  if (!config.store.empty() && url_without_password(config.store) != config.store)
    throw UserError(config.path + ": store: the URL holds a password, which would be kept with "
                    "the sweep's config in the store; put it in PGPASSWORD or ~/.pgpass instead");
  std::string url, from;
  if (flag) {
    url = *flag;
    from = "--store";
  } else if (!config.store.empty()) {
    url = config.store;
    from = config.path + ": store";
  } else if (const char* env = std::getenv("XPSCALE_STORE"); env && *env) {
    url = env;
    from = "XPSCALE_STORE";
  }
  if (url.empty() || url == "sqlite") return {};
  if (!is_postgres_url(url))
    throw UserError(from + ": expected a postgresql://user@host:port/database URL, or sqlite (out_dir's "
                    "file, the default); got '" + url_without_password(url) + "'");
  return url;
}

// A sweep's name in a PostgreSQL store: its config's `name`, else its
// out_dir's last part (runs/<config file stem> by default).
std::string postgres_sweep_name(const SweepConfig& config) {
  if (!config.name.empty()) return config.name;
  return fs::path(config.out_dir).lexically_normal().filename().string();
}

namespace {

// Job arrays: task k of n runs trials k, k+n, k+2n, ... (a partition: no
// trial runs in two tasks, whatever order the tasks run in).
bool in_array_task(std::uint64_t trial, const RunOptions& options) {
  return options.task_count <= 0 || trial % static_cast<std::uint64_t>(options.task_count) ==
                                        static_cast<std::uint64_t>(options.task);
}


// Rank 0: opens or creates the store, checks that it belongs to this config
// and builds the queue of trials still to run.
CoordinatorSetup prepare(const SweepConfig& config, const RunOptions& given, int world_size,
                         const GroupLayout& layout, const std::vector<std::string>& hosts) {
  // The store: a PostgreSQL URL (--store, the config's store:, else
  // XPSCALE_STORE), or out_dir's SQLite file. On PostgreSQL every job, and
  // every task of a job array, is a worker of the whole sweep (shared_sweep.h).
  const std::string store_url = chosen_store_url(given.store, config);
  const bool postgres = !store_url.empty();
  RunOptions options = given;
  if (postgres) options.task = options.task_count = 0;
  CoordinatorSetup s;
  s.config = &config;
  s.groups = static_cast<int>(layout.members.size());
  s.quiet = options.quiet;
  s.progress_interval_s = options.progress_interval_s;
  if (options.json_events)  // first: a path that cannot be opened leaves nothing behind
    s.json_events =
        *options.json_events == "-"
            ? std::make_unique<detail::LineWriter>(STDOUT_FILENO)
            : std::make_unique<detail::LineWriter>(*options.json_events, "--json-events");
  s.heartbeat_timeout_s = options.heartbeat_timeout_s;
  s.store_retry_s = options.store_retry_s;
  s.attempt_margin_s = options.kill_grace_s + 60;
  s.group_of_rank = layout.group_of_rank;
  s.hosts = hosts;
  s.summary.out_dir = config.out_dir;

  // A config the scheduler or searcher cannot run fails before anything is
  // written: a refused config leaves no out_dir and no store behind.
  auto scheduler = make_scheduler(config);
  auto searcher = make_searcher(config);
  // Array tasks keep separate stores and never see each other's results, so a
  // searcher that learns from results would propose the same trials in each.
  if (options.task_count > 0 && config.method == SearchMethod::kBayes)
    throw UserError(
        "method: bayes (TPE) learns from every result and cannot be split over "
        "job-array tasks with separate stores; run it as one job (without --array)");
  // Promotions are the coordinator's own queue; a shared store's queue is
  // claimed by every job (dispatch_shared), which cannot resume a paused trial yet.
  if (postgres && config.scheduler && config.scheduler->promotion == "pause")
    throw UserError(
        "scheduler.promotion: pause is not supported on a shared (PostgreSQL) store yet; use "
        "promotion: stop there");
  const fs::path out_dir = config.out_dir;
  const std::string sweep_name = postgres ? postgres_sweep_name(config) : std::string();
  const fs::path db = store_path(out_dir, options.task, options.task_count);
  std::error_code ec;
  std::unique_ptr<Store> opened;
  bool existed = false;
  if (postgres) {
    std::unique_ptr<PostgresStore> pg;
    try {
      pg = std::make_unique<PostgresStore>(store_url, sweep_name);
    } catch (const StoreError& e) {
      // A server that does not answer, a refused password, a database that
      // is not a store: the user's to fix, on every rank (exit 2).
      if (e.category() == ErrorCategory::kUser) throw UserError(e.what());
      throw;
    }
    pg->set_lease(options.lease_s);
    existed = pg->sweep().has_value();
    opened = std::move(pg);
  } else {
    existed = fs::exists(db, ec);
  }
  if (options.resume && !existed)
    throw UserError("--resume: " +
                    (postgres ? "sweep '" + sweep_name + "' has no results in " + opened->location()
                              : out_dir.string() + " holds no sweep store (" +
                                    db.filename().string() + ")") +
                    "; run without --resume to start the sweep");
  // out_dir holds config text and trials' stderr: only its owner reads it.
  // (A PostgreSQL sweep's, once its config is accepted: below.)
  const auto make_out_dir = [&] {
    const bool created = !fs::exists(out_dir, ec);
    fs::create_directories(out_dir, ec);
    if (ec) throw UserError("cannot create out_dir " + out_dir.string() + ": " + ec.message());
    if (created) fs::permissions(out_dir, fs::perms::owner_all, ec);
  };
  if (!postgres) {
    make_out_dir();
    // Before the store is touched: a second run must not mark the first's
    // running attempts interrupted.
    s.lock = std::make_unique<StoreLock>(db);
    opened = open_store(db);
    if (const auto* sqlite = dynamic_cast<const SqliteStore*>(opened.get());
        sqlite && sqlite->filesystem() && sqlite->journal_mode() != "wal" && !options.quiet)
      std::cerr << "xpscale: out_dir " << out_dir.string() << " is on " << *sqlite->filesystem()
                << ": the SQLite store uses a rollback journal there (slower than WAL on a local "
                   "disk); for many jobs on one sweep use a PostgreSQL store (--store "
                   "postgresql://...); XPSCALE_SQLITE_JOURNAL=wal if only this host uses it\n";
  }
  // `xpscale stop` acts only on runs holding the lock: a request there now
  // was for an earlier run.
  if (auto request = read_stop_request(out_dir)) s.old_stop_request = request->at;
  s.store = std::make_unique<RetryingStore>(
      std::move(opened),
      std::chrono::milliseconds(static_cast<std::int64_t>(options.store_retry_s * 1000)),
      [](const std::string& message) { std::cerr << "xpscale: " << message << std::endl; });
  Store& store = *s.store;
  const auto previous = store.sweep();
  // The same sweep is the same parsed config: comments and layout may change.
  const StoredConfigMatch match =
      match_stored_config(previous ? previous->config_hash : "",
                          previous ? previous->config_text : "", config.text, config.path);
  const std::string& hash = match.hash;
  const bool same_config = previous && match.same;
  if (previous && !same_config && !options.force)
    throw UserError((postgres ? store.location() + " was started with a different sweep config ("
                              : out_dir.string() + " holds the store of a different sweep config (") +
                    previous->config_path + "), not " + config.path + ": " + match.difference +
                    "; use --force to run this config there (finished trials whose parameters "
                    "are unchanged are kept) or choose another " +
                    (postgres ? "`name:`" : "out_dir"));

  // --force requeues the trials whose params changed: not under jobs that
  // are running them.
  if (previous && !same_config && store.shared())
    if (const auto live = store.shared()->live_runs(); !live.empty())
      throw UserError("--force: " + std::to_string(live.size()) + " job" +
                      (live.size() == 1 ? " is" : "s are") + " running sweep '" + sweep_name +
                      "' with its other config now (" + live.front() +
                      "); stop them first (xpscale stop " + out_dir.string() + ")");

  if (postgres) {
    make_out_dir();
    // For report, dashboard, export and stop, which take the out_dir.
    write_store_pointer(out_dir, {store_url, sweep_name});
  }

  // nullopt: unbounded, trials are drawn until the sweep is stopped.
  const std::optional<std::uint64_t> limit = trial_limit(config, *searcher, options.trials);
  s.summary.unbounded = !limit;
  // TPE proposes trials as results come in, and PBT changes a trial's
  // params as it runs: trials already in the store keep theirs.
  const bool adaptive = searcher->adaptive();
  const bool params_evolve = adaptive || (config.scheduler && config.scheduler->type == "pbt");
  std::uint64_t next_proposal = 0;
  const double now = detail::unix_now();

  store.begin();
  // Jobs starting together on one shared sweep plan it one at a time: the
  // second finds the first's trials and queues none of its own.
  if (SharedSweep* shared = store.shared()) shared->lock_sweep();
  // Attempts of runs that ended under them (on a shared sweep: whose lease
  // expired) go back to the queue.
  const int interrupted = store.mark_interrupted(now);
  std::map<std::uint64_t, TrialRow> existing;
  for (auto& t : store.trials()) existing.emplace(t.id, std::move(t));
  // Attempts that a run left running when it ended (kill -9, a crash, a lost
  // rank) count against the retries, with detail::kCrashesForgiven more allowed: a
  // kill of the whole job leaves its innocent trials running too, but a
  // trial that crashes its rank must not crash every resumed run.
  std::map<std::uint64_t, int> crashed;
  std::map<std::uint64_t, int> last_crashed;  // trial -> its latest attempt that a run ended under
  for (const auto& a : store.attempts()) {
    if (a.status == "failed") ++s.failed_attempts[a.trial];
    if (a.status == "lost" || (a.status == "interrupted" && a.reason == kRunEndedReason)) {
      ++crashed[a.trial];
      last_crashed[a.trial] = std::max(last_crashed[a.trial], a.attempt);
    }
  }

  // An unbounded sweep goes over the trials it has so far here; the
  // coordinator draws the next ones as groups free up (SweepAlgorithms).
  std::uint64_t planned = limit.value_or(0);
  if (!limit && !existing.empty()) planned = existing.rbegin()->first + 1;
  std::deque<QueuedTrial> restarted, fresh, ended_under;
  for (std::uint64_t i = 0; i < planned; ++i) {
    auto it = existing.find(i);
    std::optional<Params> params;
    if (params_evolve && same_config && it != existing.end()) {
      params = it->second.params;
      next_proposal = i + 1;
    } else if (adaptive) {
      ++s.summary.planned;  // proposed when a group is free (SweepAlgorithms)
      continue;
    } else {
      params = searcher->suggest(i);
    }
    if (!params) break;
    if (!in_array_task(i, options)) continue;
    ++s.summary.planned;
    if (it != existing.end() && it->second.params == *params) {
      const TrialRow& t = it->second;
      if (options.retry_failed && t.status == TrialStatus::kFailed) {
        // --retry-failed: a new attempt, with fresh retries.
        s.failed_attempts.erase(i);
        crashed.erase(i);
        store.put_queued_trial(i, *params);
        fresh.push_back({i, std::move(*params), t.attempts + 1});
        continue;
      }
      if (is_final(t.status)) {
        ++s.summary.skipped;
        if (t.status == TrialStatus::kFailed)
          ++s.summary.failed;
        else
          ++s.summary.completed;
        if (t.best_value) {
          const bool max = config.metric && config.metric->goal == Goal::kMaximize;
          if (!s.best || (max ? *t.best_value > *s.best : *t.best_value < *s.best)) {
            s.best = t.best_value;
            s.best_trial = t.id;
          }
        }
        continue;
      }
      if (const int c = crashed[i]; c > config.retries + detail::kCrashesForgiven) {
        const std::string why = "the run ended while it ran, " + std::to_string(c) +
                                " times (a crash of its rank?); not retried again";
        store.finish_attempt(i, t.attempts, TrialStatus::kFailed, why, "", now, true);
        ++s.summary.failed;
        if (!options.quiet) std::cerr << "xpscale: trial " << i << " failed: " << why << '\n';
        continue;
      }
      // A trial whose last attempt's run ended under it (kill -9, a crash,
      // a lost rank) goes after the others: if it crashed the run, the
      // sweep makes progress before it runs again; if it did not, it is
      // not in flight at every early death of the runs that follow (each
      // counts against it, above).
      if (auto lc = last_crashed.find(i); lc != last_crashed.end() && lc->second == t.attempts)
        ended_under.push_back({i, std::move(*params), t.attempts + 1});
      else
        (t.attempts > 0 ? restarted : fresh).push_back({i, std::move(*params), t.attempts + 1});
      continue;
    }
    const int attempts = it != existing.end() ? it->second.attempts : 0;
    if (it != existing.end()) s.failed_attempts.erase(i);
    store.put_queued_trial(i, *params);
    fresh.push_back({i, std::move(*params), attempts + 1});
  }
  // Trials that a stopped run left half done go first: they hold
  // checkpoints. Those whose run ended under them go last.
  s.queue = std::move(restarted);
  for (auto& t : fresh) s.queue.push_back(std::move(t));
  for (auto& t : ended_under) s.queue.push_back(std::move(t));
  // A shared sweep's queue is its store's queued trials (claim_trial).
  s.shared = store.shared() != nullptr;
  if (s.shared) s.queue.clear();
  std::uint64_t stride = 1;
  if (!limit && !adaptive) {  // fresh trials from the first id of this task past the known ones
    next_proposal = planned;
    if (options.task_count > 0) {
      stride = static_cast<std::uint64_t>(options.task_count);
      while (!in_array_task(next_proposal, options)) ++next_proposal;
    }
  }
  s.algorithms = std::make_unique<detail::SweepAlgorithms>(
      config, std::move(searcher), std::move(scheduler), next_proposal, limit, stride);
  if (same_config) s.algorithms->restore(store);

  SweepRow row;
  row.name = config.name;
  row.config_path = config.path;
  row.config_text = config.text;
  row.config_hash = hash;
  row.metric = config.metric ? config.metric->name : "";
  row.goal = config.metric ? config.metric->goal : Goal::kMinimize;
  row.planned = s.summary.planned;
  row.created_at = previous ? previous->created_at : now;
  row.updated_at = now;
  store.write_sweep(row);
  s.resumed = previous.has_value();
  s.run = store.begin_run(world_size, s.groups, static_cast<int>(config.resources.ranks_per_trial),
                          join(hosts), previous.has_value(), now);
  store.commit();

  if (!options.quiet) {
    std::cerr << "xpscale: " << (previous ? "resuming " : "starting ") << "sweep "
              << (config.name.empty() ? config.path : config.name) << ": ";
    if (s.summary.unbounded)
      std::cerr << "method " << search_method_name(config.method)
                << " draws trials until the sweep is stopped (xpscale stop " << out_dir.string()
                << ", Ctrl-C, the time limit)";
    else
      std::cerr << s.summary.planned << " trials";
    if (s.summary.skipped) std::cerr << ", " << s.summary.skipped << " already finished";
    if (interrupted) std::cerr << ", " << interrupted << " interrupted ones restart";
    std::cerr << "; " << s.groups << " group" << (s.groups == 1 ? "" : "s") << " of "
              << config.resources.ranks_per_trial << " rank"
              << (config.resources.ranks_per_trial == 1 ? "" : "s") << " on " << world_size
              << " rank" << (world_size == 1 ? "" : "s") << "; out_dir " << out_dir.string()
              << '\n';
    if (!layout.idle.empty()) {
      std::vector<std::string> idle;
      for (int r : layout.idle) idle.push_back(std::to_string(r));
      std::cerr << "xpscale: warning: rank" << (idle.size() == 1 ? " " : "s ") << join(idle)
                << " stay idle: " << world_size << " ranks do not split evenly into groups of "
                << config.resources.ranks_per_trial << '\n';
    }
  }
  return s;
}

// Waits on a non-blocking barrier without spinning a core.
void quiet_barrier(MPI_Comm comm) {
  MPI_Request req;
  XPSCALE_MPI_CHECK(MPI_Ibarrier(comm, &req));
  detail::Backoff backoff;
  for (;;) {
    int done = 0;
    XPSCALE_MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
    if (done) return;
    backoff.idle();
  }
}

}  // namespace

RunSummary run_sweep(const RunOptions& options, const TrainFn& train) {
  return run_sweep(options, TrainFactory([&](const SweepConfig&) { return train; }));
}

RunSummary run_sweep(const RunOptions& options, const TrainFactory& make_train) {
  if (options.task_count < 0 || options.task < 0 ||
      (options.task_count > 0 && options.task >= options.task_count))
    throw UserError("array task " + std::to_string(options.task) + " of " +
                    std::to_string(options.task_count) + ": the task must be in [0, " +
                    std::to_string(options.task_count) + ")");
  const PreemptionHandler preemption;
  int provided = 0;
  XPSCALE_MPI_CHECK(MPI_Query_thread(&provided));
  if (provided < MPI_THREAD_MULTIPLE)
    throw Error(
        "run_sweep needs MPI initialised with MPI_THREAD_MULTIPLE (the coordinator is a "
        "thread of rank 0)");
  const int rank = world_rank();
  int world_size = 0;
  XPSCALE_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_size));

  // The config: read once on rank 0, parsed from the same bytes everywhere.
  std::string text;
  on_rank0_for_all([&] { text = load_sweep_config(options.sweep_path).text; });
  bcast_string(text);
  SweepConfig config = parse_sweep_config(text, options.sweep_path, {.strict = options.strict});
  if (rank == 0) print_config_warnings(config, std::cerr);  // every rank parses; one prints
  if (options.out_dir) config.out_dir = *options.out_dir;
  // Absolute, so that the trial directories handed to trials stay right for
  // a trainer that changes directory (as Hydra does).
  if (!config.out_dir.empty())
    config.out_dir = fs::absolute(config.out_dir).lexically_normal().string();
  require_built(config, "run");
  const TrainFn train = make_train(config);

  const auto hosts = gather_hosts();
  const GroupLayout layout =
      assign_groups(hosts, static_cast<int>(config.resources.ranks_per_trial));
  if (layout.members.empty())
    throw UserError("resources.ranks_per_trial is " +
                    std::to_string(config.resources.ranks_per_trial) + " but the job has only " +
                    std::to_string(world_size) + " rank" + (world_size == 1 ? "" : "s") +
                    "; launch at least " + std::to_string(config.resources.ranks_per_trial) +
                    " ranks (mpirun -n N, or xpscale launch -n N)");

  CoordinatorSetup setup;
  on_rank0_for_all([&] { setup = prepare(config, options, world_size, layout, hosts); });

  const int local_rank = node_local_rank(MPI_COMM_WORLD);
  const int local_size = node_local_size(MPI_COMM_WORLD);
  const int group = layout.group_of_rank[static_cast<std::size_t>(rank)];
  MPI_Comm ctrl = MPI_COMM_NULL, group_comm = MPI_COMM_NULL, gctl = MPI_COMM_NULL;
  XPSCALE_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &ctrl));
  int key = 0;
  if (group >= 0) {
    const auto& m = layout.members[static_cast<std::size_t>(group)];
    key = static_cast<int>(std::find(m.begin(), m.end(), rank) - m.begin());
  }
  XPSCALE_MPI_CHECK(
      MPI_Comm_split(MPI_COMM_WORLD, group >= 0 ? group : MPI_UNDEFINED, key, &group_comm));

  std::unique_ptr<detail::Coordinator> coordinator;
  std::thread coordinator_thread;
  if (rank == 0) {
    coordinator = std::make_unique<detail::Coordinator>(std::move(setup), ctrl);
    coordinator_thread = std::thread([&] { coordinator->run(); });
  }

  // Heartbeats (protocol.h): from a thread of their own, so a rank busy in
  // a trial still shows it is alive.
  std::mutex heartbeat_mutex;
  std::condition_variable heartbeat_cv;
  bool heartbeat_stop = false;
  std::thread heartbeat;
  if (rank != 0 && options.heartbeat_timeout_s > 0)
    heartbeat = std::thread([&] {
      const auto every =
          std::chrono::duration<double>(std::clamp(options.heartbeat_timeout_s / 4, 0.25, 15.0));
      std::unique_lock lock(heartbeat_mutex);
      while (!heartbeat_stop) {
        lock.unlock();
        try {
          detail::send_json(ctrl, 0, detail::kTagHeartbeat, {{"k", "hb"}});
        } catch (const std::exception& e) {
          std::cerr << "xpscale: rank " << rank << ": cannot send a heartbeat: " << e.what()
                    << '\n';
        }
        lock.lock();
        heartbeat_cv.wait_for(lock, every, [&] { return heartbeat_stop; });
      }
    });
  auto stop_heartbeat = [&] {
    {
      std::lock_guard lock(heartbeat_mutex);
      heartbeat_stop = true;
    }
    heartbeat_cv.notify_all();
    if (heartbeat.joinable()) heartbeat.join();
  };

  std::exception_ptr failure;
  try {
    if (group >= 0) {
      XPSCALE_MPI_CHECK(MPI_Comm_dup(group_comm, &gctl));
      collectives::Options copts;
      copts.backend = options.backend;
      // The GPU follows the node-local rank in the whole job (computed here
      // with MPI_Comm_split_type, not taken from launcher variables that an
      // mpirun inside a Slurm allocation may have inherited).
      if (const int devices = cuda_device_count(); devices > 0) copts.device = local_rank % devices;
      auto comm = collectives::make_communicator(group_comm, copts);
      const auto& members = layout.members[static_cast<std::size_t>(group)];
      detail::GroupContext ctx;
      ctx.ctrl = ctrl;
      ctx.gctl = gctl;
      ctx.comm = comm.get();
      ctx.group = group;
      ctx.group_rank = key;
      ctx.group_size = static_cast<int>(members.size());
      ctx.world_rank = rank;
      ctx.local_rank = local_rank;
      ctx.local_size = local_size;
      std::vector<std::string> ranks;
      for (int r : members) {
        ranks.push_back(std::to_string(r));
        ctx.hosts.push_back(hosts[static_cast<std::size_t>(r)]);
      }
      ctx.ranks = join(ranks);
      ctx.hosts_text = join(ctx.hosts);
      ctx.out_dir = config.out_dir;
      ctx.time_limit_s = config.resources.time_limit_s;
      if (config.train_data) ctx.data["train"] = *config.train_data;
      if (config.val_data) ctx.data["val"] = *config.val_data;
      detail::GroupWorker(std::move(ctx)).run(train);
    }
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    // A rank whose group loop broke (an MPI or store failure, not a trial's
    // error) cannot finish its part of the protocol; end the job rather
    // than leave the others waiting for it.
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      std::cerr << "xpscale: rank " << rank << ": fatal: " << e.what() << '\n';
    }
    MPI_Abort(MPI_COMM_WORLD, 1);
  }

  stop_heartbeat();
  RunSummary summary;
  summary.out_dir = config.out_dir;
  if (rank == 0) {
    coordinator_thread.join();
    summary = coordinator->summary();
  }
  quiet_barrier(MPI_COMM_WORLD);
  if (gctl != MPI_COMM_NULL) MPI_Comm_free(&gctl);
  if (group_comm != MPI_COMM_NULL) MPI_Comm_free(&group_comm);
  MPI_Comm_free(&ctrl);
  if (rank == 0 && coordinator->internal_error())
    throw Error(summary.stop_reason, coordinator->error_category());
  return summary;
}

}  // namespace xpscale
