// xpscale enqueue, xpscale queue and xpscale agent: a queue of sweeps in a
// PostgreSQL store, served by agents (sweep_queue.h has the protocol,
// docs/store.md the user's view).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "xpscale/config/canonical_config.h"
#include "xpscale/config/sweep_config.h"
#include "xpscale/coordinator/protocol.h"
#include "xpscale/launcher/process.h"
#include "xpscale/schedule/scheduler.h"
#include "xpscale/search/searcher.h"
#include "xpscale/store/postgres_store.h"
#include "xpscale/store/sweep_queue.h"
#include "xpscale/trial/run.h"

extern char** environ;

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace xpscale::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Queue names go into messages, tables and a text[] literal: a plain word.
void check_queue_name(const std::string& name) {
  static const std::regex kName("[A-Za-z0-9._-]{1,64}");
  if (!std::regex_match(name, kName))
    throw UserError("--queue: a queue name is 1-64 letters, digits, '.', '_' or '-'; got '" +
                    name + "'");
}

// The store of the queue: --store, else XPSCALE_STORE; a PostgreSQL URL.
std::string queue_store_url(const std::string& flag, const char* command) {
  std::string url = flag;
  if (url.empty())
    if (const char* env = std::getenv("XPSCALE_STORE")) url = env;
  if (url.empty())
    throw UserError(std::string(command) +
                    ": the queue lives in a PostgreSQL store: pass --store "
                    "postgresql://user@host:port/database (or set XPSCALE_STORE)");
  if (!is_postgres_url(url))
    throw UserError(std::string(command) +
                    ": the queue needs a postgresql://user@host:port/database store, got '" +
                    url_without_password(url) + "'");
  return url;
}

std::unique_ptr<SweepQueue> open_queue(const std::string& url) {
  try {
    return std::make_unique<SweepQueue>(url);
  } catch (const StoreError& e) {
    if (e.category() == ErrorCategory::kUser) throw UserError(e.what());
    throw;
  }
}

std::string ago(double seconds) {
  if (!(seconds >= 0)) return "-";
  const auto s = static_cast<long long>(seconds);
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m";
  if (s < 86400) return std::to_string(s / 3600) + "h" + std::to_string(s % 3600 / 60) + "m";
  return std::to_string(s / 86400) + "d";
}

nlohmann::json entry_json(const QueueEntry& e) {
  nlohmann::json j = {{"id", e.id},
                      {"queue", e.queue},
                      {"sweep", e.sweep},
                      {"status", e.status},
                      {"priority", e.priority},
                      {"config", e.config_path},
                      {"out_dir", e.out_dir},
                      {"ranks_per_trial", e.ranks_per_trial},
                      {"gpus_per_rank", e.gpus_per_rank},
                      {"enqueued_at", e.enqueued_at},
                      {"enqueued_by", e.enqueued_by},
                      {"started_at", e.started_at ? nlohmann::json(*e.started_at) : nullptr},
                      {"finished_at", e.finished_at ? nlohmann::json(*e.finished_at) : nullptr},
                      {"agent", e.agent},
                      {"runs", e.runs},
                      {"exit_code", e.exit_code ? nlohmann::json(*e.exit_code) : nullptr},
                      {"message", e.message},
                      {"cancel_requested", e.cancel_requested},
                      {"queue_paused", e.paused},
                      {"trials",
                       {{"total", e.trials},
                        {"completed", e.completed},
                        {"failed", e.failed},
                        {"running", e.running}}}};
  return j;
}

// ---- xpscale enqueue ------------------------------------------------------

constexpr const char* kEnqueueUsage =
    "usage: xpscale enqueue SWEEP.yaml [--queue NAME] [--priority P] [--store URL]\n\n"
    "Adds a sweep to a queue in a PostgreSQL store; `xpscale agent` processes serve\n"
    "the queue, by priority (higher first) then age, each running its sweeps as jobs\n"
    "of the shared sweep. The config is checked now; it runs from its file, in this\n"
    "directory, when an agent takes it. The store: --store, else the config's store:,\n"
    "else XPSCALE_STORE.\n\noptions";

}  // namespace

int enqueue_command(const std::vector<std::string>& args) {
  std::string queue = "default", store;
  int priority = 0;
  po::options_description options(kEnqueueUsage);
  options.add_options()("help,h", "show this help")(
      "queue,q", po::value<std::string>(&queue)->default_value("default"), "the queue")(
      "priority,p", po::value<int>(&priority)->default_value(0),
      "higher runs first (ties: the oldest first)")(
      "store", po::value<std::string>(&store), "postgresql://user@host:port/database");
  po::variables_map vm;
  const std::string path = parse_command_line(args, options, "config", vm);
  if (vm.count("help")) {
    std::cout << options << '\n';
    return kExitOk;
  }
  if (path.empty()) throw UserError("enqueue: missing SWEEP.yaml (xpscale enqueue SWEEP.yaml)");
  check_queue_name(queue);
  const SweepConfig config = load_sweep_config(path);
  print_config_warnings(config, std::cerr);
  // What `xpscale run` would refuse is refused now, not on an agent.
  (void)make_searcher(config);
  (void)make_scheduler(config);
  const std::string url =
      chosen_store_url(store.empty() ? std::nullopt : std::optional(store), config);
  if (url.empty())
    throw UserError("enqueue: the queue lives in a PostgreSQL store: pass --store "
                    "postgresql://user@host:port/database (or set XPSCALE_STORE, or the "
                    "config's store:)");
  auto q = open_queue(url);
  NewQueueEntry e;
  e.queue = queue;
  e.sweep = postgres_sweep_name(config);
  e.config_path = fs::absolute(path).lexically_normal().string();
  e.config_text = config.text;
  e.config_hash = canonical_config_hash(config.text, config.path);
  e.out_dir = fs::absolute(config.out_dir).lexically_normal().string();
  e.cwd = fs::current_path().string();
  e.ranks_per_trial = config.resources.ranks_per_trial;
  e.gpus_per_rank = config.resources.gpus_per_rank;
  e.priority = priority;
  e.enqueued_by = who_am_i();
  // A sweep of that name begun with another config would be refused by
  // the agent's job: refused here, naming the difference.
  {
    PostgresStore sweep(url, e.sweep, Store::Mode::kReadOnly);
    if (const auto previous = sweep.sweep()) {
      const auto match = match_stored_config(previous->config_hash, previous->config_text,
                                             config.text, config.path);
      if (!match.same)
        throw UserError("enqueue: " + sweep.location() + " was started with a different config (" +
                        previous->config_path + "): " + match.difference +
                        "; give this one another `name:`");
    }
  }
  QueueEntry added;
  try {
    added = q->enqueue(e);
  } catch (const StoreError& err) {
    if (err.category() == ErrorCategory::kUser) throw UserError("enqueue: " + std::string(err.what()));
    throw;
  }
  const auto ahead = q->position(added.id);
  std::cout << "xpscale: queued sweep '" << added.sweep << "' as entry " << added.id
            << " on queue '" << added.queue << "' (priority " << added.priority << ", "
            << ahead << (ahead == 1 ? " entry" : " entries") << " ahead) in "
            << q->location() << '\n';
  return kExitOk;
}

// ---- xpscale queue ----------------------------------------------------------

namespace {

constexpr const char* kQueueUsage =
    "usage: xpscale queue list [--queue NAME]... [--finished N] [--json] [--store URL]\n"
    "       xpscale queue pause NAME | resume NAME [--store URL]\n"
    "       xpscale queue cancel ID|SWEEP... [--store URL]\n\n"
    "The queue of sweeps in a PostgreSQL store (xpscale enqueue adds to it, xpscale\n"
    "agent serves it). `pause` keeps agents from taking a queue's entries (running\n"
    "ones go on); `cancel` drops a queued entry, or stops a running one's job (its\n"
    "trials are kept and resume if it is enqueued again). The store: --store, else\n"
    "XPSCALE_STORE.\n\noptions";

void print_table(const std::vector<QueueEntry>& entries,
                 const std::vector<std::pair<std::string, bool>>& queues) {
  const double now = detail::unix_now();
  std::vector<std::vector<std::string>> rows = {
      {"ID", "QUEUE", "PRI", "STATUS", "SWEEP", "TRIALS", "TIME", "AGENT / NOTE"}};
  for (const auto& e : entries) {
    std::string status = e.status;
    if (e.cancel_requested && e.status == "running") status = "cancelling";
    if (e.status == "queued" && e.paused) status = "queued (paused)";
    std::string trials = e.trials ? std::to_string(e.completed) + "/" + std::to_string(e.trials)
                                  : "-";
    if (e.failed) trials += " " + std::to_string(e.failed) + " failed";
    if (e.running) trials += " " + std::to_string(e.running) + " running";
    std::string note = e.status == "running" ? e.agent : e.message;
    if (e.status != "running" && e.status != "queued" && e.exit_code && note.empty())
      note = "exit " + std::to_string(*e.exit_code);
    if (note.size() > 80) note = note.substr(0, 77) + "...";
    // Queued: how long it has waited; running: how long it has run;
    // finished: how long it took from its first start.
    const double took = e.status == "queued"     ? now - e.enqueued_at
                        : e.status == "running" ? now - e.started_at.value_or(now)
                        : e.started_at && e.finished_at ? *e.finished_at - *e.started_at
                                                        : -1;
    rows.push_back({std::to_string(e.id), e.queue, std::to_string(e.priority), status, e.sweep,
                    trials, ago(took), note});
  }
  std::vector<std::size_t> width(rows[0].size(), 0);
  for (const auto& r : rows)
    for (std::size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t c = 0; c < r.size(); ++c) {
      std::string cell = r[c];
      if (c + 1 < r.size()) cell.resize(width[c] + 2, ' ');
      line += cell;
    }
    std::cout << line << '\n';
  }
  if (entries.empty()) std::cout << "(no entries)\n";
  std::string paused;
  for (const auto& [name, p] : queues)
    if (p) paused += (paused.empty() ? "" : ", ") + name;
  if (!paused.empty()) std::cout << "paused: " << paused << '\n';
}

}  // namespace

int queue_command(const std::vector<std::string>& args_in) {
  if (args_in.empty()) {
    std::cerr << kQueueUsage << "\n(xpscale queue list --help for the options)\n";
    return kExitUsage;
  }
  if (args_in[0] == "--help" || args_in[0] == "-h") {
    std::cout << kQueueUsage << "\n(xpscale queue list --help for the options)\n";
    return kExitOk;
  }
  const std::string verb = args_in[0];
  const std::vector<std::string> args(args_in.begin() + 1, args_in.end());
  std::string store;
  std::vector<std::string> queues, keys;
  int finished = 20;
  bool json = false;
  po::options_description options(kQueueUsage);
  options.add_options()("help,h", "show this help")(
      "store", po::value<std::string>(&store), "postgresql://user@host:port/database")(
      "queue,q", po::value<std::vector<std::string>>(&queues), "list: only this queue (repeat)")(
      "finished", po::value<int>(&finished)->default_value(20),
      "list: show the last N finished entries")("json", po::bool_switch(&json),
                                                "list: JSON, one object per entry");
  po::options_description hidden;
  hidden.add_options()("key", po::value<std::vector<std::string>>(&keys));
  po::options_description all;
  all.add(options).add(hidden);
  po::positional_options_description positional;
  positional.add("key", -1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << options << '\n';
    return kExitOk;
  }
  for (const auto& name : queues) check_queue_name(name);
  check_count_option("queue: --finished", finished, 0, 100000);
  if (verb != "list" && verb != "pause" && verb != "resume" && verb != "cancel")
    throw UserError("queue: unknown command '" + verb + "'; use list, pause, resume or cancel");
  if (verb == "list" && !keys.empty())
    throw UserError("queue list: unexpected '" + keys[0] + "' (filter with --queue NAME)");
  if ((verb == "pause" || verb == "resume") && keys.size() != 1)
    throw UserError("queue " + verb + ": name one queue (xpscale queue " + verb + " NAME)");
  if (verb == "cancel" && keys.empty())
    throw UserError("queue cancel: name the entries (their ID or sweep name; see xpscale queue list)");
  const auto q = open_queue(queue_store_url(store, ("queue " + verb).c_str()));
  if (verb == "list") {
    const auto entries = q->list(queues, finished);
    if (json) {
      for (const auto& e : entries) std::cout << entry_json(e).dump() << '\n';
    } else {
      print_table(entries, q->queues());
    }
    return kExitOk;
  }
  if (verb == "pause" || verb == "resume") {
    check_queue_name(keys[0]);
    q->set_paused(keys[0], verb == "pause", who_am_i());
    std::cout << "xpscale: queue '" << keys[0] << "' "
              << (verb == "pause" ? "paused: agents take none of its entries until `xpscale queue "
                                    "resume " + keys[0] + "` (running ones go on)"
                                  : "resumed")
              << '\n';
    return kExitOk;
  }
  int status = kExitOk;
  for (const auto& key : keys) {
    try {
      const auto e = q->cancel(key, who_am_i());
      if (e.status == "cancelled")
        std::cout << "xpscale: cancelled entry " << e.id << " (sweep '" << e.sweep << "')\n";
      else
        std::cout << "xpscale: asked the agent of entry " << e.id << " (sweep '" << e.sweep
                  << "', " << e.agent << ") to stop its job; it does within a few seconds\n";
    } catch (const StoreError& err) {
      if (err.category() != ErrorCategory::kUser) throw;
      std::cerr << "xpscale: " << err.what() << '\n';
      status = kExitUsage;
    }
  }
  return status;
}

// ---- xpscale agent ----------------------------------------------------------

namespace {

constexpr const char* kAgentUsage =
    "usage: xpscale agent [--store URL] [--queue NAME]... [-n RANKS] [--gpus G]\n"
    "                     [--launcher auto|srun|mpirun|none] [--idle-exit S] [--once]\n"
    "                     [--log-dir DIR] [--lease S]\n\n"
    "Serves the queue of sweeps in a PostgreSQL store: takes the entry of highest\n"
    "priority, then the oldest, whose resources fit (ranks_per_trial <= RANKS,\n"
    "ranks x gpus_per_rank <= G), runs it as a job of its shared sweep on RANKS ranks\n"
    "(srun inside a Slurm allocation, else mpirun, or in-process on one rank), and\n"
    "takes the next when it ends. Many agents may serve one queue; an agent that dies\n"
    "loses its entry to the next agent after --lease. On SIGTERM/SIGINT/SIGUSR1/SIGHUP\n"
    "the job gets SIGUSR1 (its trials checkpoint) and its entry goes back to the queue.\n"
    "The store: --store, else XPSCALE_STORE.\n\noptions";

volatile sig_atomic_t g_signal = 0;  // the last signal asking the agent to stop
volatile sig_atomic_t g_signals = 0;

extern "C" void on_stop_signal(int sig) {
  g_signal = sig;
  g_signals = g_signals + 1;
}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: sleeps end early
  for (int sig : {SIGINT, SIGTERM, SIGUSR1, SIGHUP}) ::sigaction(sig, &sa, nullptr);
}

// Sleeps up to `d`, ending early once a stop signal came.
void nap(std::chrono::milliseconds d) {
  const auto until = Clock::now() + d;
  while (!g_signal && Clock::now() < until)
    std::this_thread::sleep_for(std::min(std::chrono::milliseconds(100),
                                         std::chrono::duration_cast<std::chrono::milliseconds>(
                                             until - Clock::now())));
}

std::int64_t env_int(const char* name, std::int64_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  return end && *end == '\0' && x > 0 ? x : fallback;
}

// The GPUs this agent has: CUDA_VISIBLE_DEVICES' entries, else Slurm's
// count for the allocation, else /dev/nvidiaN files.
std::int64_t detect_gpus() {
  if (const char* v = std::getenv("CUDA_VISIBLE_DEVICES")) {
    std::string s = v;
    if (s.empty() || s == "-1" || s == "none") return 0;
    return 1 + std::count(s.begin(), s.end(), ',');
  }
  if (const auto per_node = env_int("SLURM_GPUS_ON_NODE", 0); per_node > 0)
    return per_node * env_int("SLURM_JOB_NUM_NODES", 1);
  std::int64_t n = 0;
  std::error_code ec;
  for (const auto& f : fs::directory_iterator("/dev", ec)) {
    const std::string name = f.path().filename().string();
    if (name.size() > 6 && name.starts_with("nvidia") &&
        std::all_of(name.begin() + 6, name.end(), [](unsigned char c) { return std::isdigit(c); }))
      ++n;
  }
  return n;
}

bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  for (std::string d; std::getline(dirs, d, ':');)
    if (!d.empty() && ::access((fs::path(d) / program).c_str(), X_OK) == 0) return true;
  return false;
}

struct AgentOptions {
  std::string url;        // with its password, for this process only
  std::string child_url;  // without it
  std::string password;
  AgentOffer offer;
  std::string launcher;  // srun, mpirun or none
  double idle_exit_s = -1;
  bool once = false;
  fs::path log_dir;
};

// The job's command for entry `e` on `ranks` ranks.
std::vector<std::string> job_argv(const AgentOptions& o, const QueueEntry& e, std::int64_t ranks) {
  const std::string self = self_exe();
  std::vector<std::string> run_args = {e.config_path, "--store", o.child_url, "--lease",
                                       std::to_string(static_cast<int>(o.offer.lease_s))};
  std::vector<std::string> argv;
  if (o.launcher == "srun") {
    // PMIx, as the batch script of `xpscale slurm submit` (Open MPI needs it under srun).
    argv = {"srun", "--mpi=pmix", "--ntasks", std::to_string(ranks), "--kill-on-bad-exit=1", self,
            "run"};
  } else if (o.launcher == "mpirun") {
    argv = {self, "launch", "-n", std::to_string(ranks)};
  } else {
    argv = {self, "run"};
  }
  argv.insert(argv.end(), run_args.begin(), run_args.end());
  return argv;
}

std::vector<std::string> job_env(const AgentOptions& o) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv = *e;
    if (!o.password.empty() && kv.starts_with("PGPASSWORD=")) continue;
    env.push_back(kv);
  }
  if (!o.password.empty()) env.push_back("PGPASSWORD=" + o.password);
  return env;
}

std::string last_lines(const fs::path& log, std::size_t lines) {
  std::string tail;
  try {
    tail = launcher::file_tail(log, 4096);
  } catch (const std::exception&) {
    return "";
  }
  while (!tail.empty() && tail.back() == '\n') tail.pop_back();
  std::size_t p = tail.size();
  for (std::size_t n = 0; n < lines && p != std::string::npos && p > 0; ++n)
    p = tail.rfind('\n', p - 1);
  if (p != std::string::npos && p < tail.size()) tail = tail.substr(p + 1);
  for (auto& c : tail)
    if (c == '\n') c = ' ';
  return tail;
}

void say(const std::string& line) { std::cerr << "xpscale agent: " << line << std::endl; }

// Ends entry `e` (finish()), waiting out a store that is briefly
// unavailable (a minute), and says how it ended: a put-back entry whose
// cancel was asked for meanwhile ends cancelled (sweep_queue.h).
void record_end(SweepQueue& q, const AgentOptions& o, const QueueEntry& e,
                const std::string& status, std::optional<int> code, const std::string& message) {
  for (int attempt = 0;; ++attempt) {
    try {
      if (!q.finish(e.id, o.offer.agent, status, code, message)) {
        say("entry " + std::to_string(e.id) + " is no longer this agent's; its end (" + status +
            ") is not recorded");
        return;
      }
      break;
    } catch (const StoreError& err) {
      if (!err.transient() || attempt == 30) throw;
      say(std::string("cannot record the entry's end yet: ") + err.what());
      std::this_thread::sleep_for(std::chrono::seconds(2));
    }
  }
  std::string now = status;
  try {
    if (const auto after = q.find(std::to_string(e.id))) now = after->status;
  } catch (const StoreError&) {
  }
  say("entry " + std::to_string(e.id) + " (sweep '" + e.sweep + "'): " + now +
      (message.empty() ? "" : " (" + message + ")"));
}

// Runs entry `e` to its end; returns false when the agent is to stop.
bool serve_entry(SweepQueue& q, const AgentOptions& o, QueueEntry e) {
  // The config as enqueued: a file changed since (beyond comments and
  // layout) is not what was asked for.
  std::string text;
  std::string problem;
  try {
    const SweepConfig now = load_sweep_config(e.config_path);
    const auto match = match_stored_config(e.config_hash, e.config_text, now.text, now.path);
    if (!match.same)
      problem = e.config_path + " changed since it was enqueued (" + match.difference +
                "); enqueue it again";
  } catch (const std::exception& err) {
    problem = std::string("its config cannot be loaded now: ") + err.what();
  }
  if (!problem.empty()) {
    record_end(q, o, e, "failed", std::nullopt, problem);
    return true;
  }
  std::int64_t ranks = o.offer.ranks;
  if (e.gpus_per_rank > 0) ranks = std::min(ranks, o.offer.gpus / e.gpus_per_rank);
  ranks -= ranks % std::max<std::int64_t>(1, e.ranks_per_trial);

  launcher::SpawnSpec spec;
  spec.argv = job_argv(o, e, ranks);
  spec.env = job_env(o);
  std::error_code ec;
  spec.cwd = fs::is_directory(e.cwd, ec) ? fs::path(e.cwd) : fs::path(e.config_path).parent_path();
  spec.metrics_pipe = false;
  spec.orphan_grace = std::chrono::seconds(60);
  fs::path log;
  if (!o.log_dir.empty()) {
    std::string safe = e.sweep;
    for (auto& c : safe)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
    log = o.log_dir / (std::to_string(e.id) + "-" + safe + ".log");
    spec.stdout_path = spec.stderr_path = log;
  }
  std::string shown;
  for (const auto& a : spec.argv) shown += (shown.empty() ? "" : " ") + a;
  say("entry " + std::to_string(e.id) + ": sweep '" + e.sweep + "' (queue '" + e.queue +
      "', priority " + std::to_string(e.priority) + ") on " + std::to_string(ranks) +
      (ranks == 1 ? " rank: " : " ranks: ") + shown + (log.empty() ? "" : " > " + log.string()));

  std::optional<launcher::Process> job;
  try {
    job.emplace(launcher::Process::spawn(spec));
  } catch (const std::exception& err) {
    record_end(q, o, e, "failed", std::nullopt, std::string("cannot start its job: ") + err.what());
    return true;
  }
  const auto beat_every = std::chrono::milliseconds(
      static_cast<std::int64_t>(std::clamp(o.offer.lease_s / 5, 0.5, 5.0) * 1000));
  auto next_beat = Clock::now() + beat_every;
  bool cancel = false, lost = false;
  int forwarded = 0;  // the agent's stop signals seen while the job ran
  // Every stop (the agent's signal, a cancel, a lost lease) sends the job
  // SIGUSR1, `xpscale run`'s preemption: its trials checkpoint and it exits
  // 3. (A second SIGTERM/SIGINT would end a run at once, and srun passes
  // SIGUSR1 on to the ranks as mpirun does.) A job still running kStopGrace
  // later, or after a second signal to the agent, is ended.
  constexpr auto kStopGrace = std::chrono::seconds(120);
  std::optional<Clock::time_point> stop_sent;
  const auto stop_job = [&](const std::string& why) {
    if (stop_sent) return;
    say(why);
    job->signal_group(SIGUSR1);
    stop_sent = Clock::now();
  };
  std::optional<launcher::ExitStatus> st;
  while (!(st = job->wait_for(std::chrono::milliseconds(200)))) {
    if (g_signals > forwarded) {
      if (forwarded == 0 && !stop_sent) {
        stop_job("signal " + std::to_string(g_signal) + ": the job of entry " +
                 std::to_string(e.id) + " checkpoints and stops (SIGUSR1)");
      } else if (forwarded > 0) {
        say("another signal: ending the job of entry " + std::to_string(e.id) + " now");
        st = job->terminate_tree(std::chrono::seconds(5));
        break;
      }
      forwarded = g_signals;
    }
    if (stop_sent && Clock::now() - *stop_sent > kStopGrace) {
      say("the job of entry " + std::to_string(e.id) + " did not stop within " +
          std::to_string(kStopGrace.count()) + " s: ending it");
      st = job->terminate_tree(std::chrono::seconds(10));
      break;
    }
    if (Clock::now() >= next_beat) {
      next_beat = Clock::now() + beat_every;
      SweepQueue::Beat beat = SweepQueue::Beat::kHeld;
      try {
        beat = q.heartbeat(e.id, o.offer.agent);
      } catch (const StoreError& err) {
        // The job goes on; its lease outlives a short outage.
        say(std::string("heartbeat failed (retrying): ") + err.what());
        continue;
      }
      if (beat == SweepQueue::Beat::kCancel && !cancel) {
        cancel = true;
        stop_job("entry " + std::to_string(e.id) + " was cancelled: stopping its job");
      } else if (beat == SweepQueue::Beat::kLost && !lost) {
        lost = true;
        stop_job("entry " + std::to_string(e.id) +
                 " is no longer this agent's (its lease expired and another agent took it): "
                 "stopping its job");
      }
    }
  }
  job->terminate_tree(std::chrono::seconds(5));  // leftovers of the job, if any
  const std::string how = st->describe();
  const std::string tail = log.empty() ? "" : last_lines(log, 3);
  const std::optional<int> code = st->signal ? std::nullopt : std::optional(st->code);
  std::string status, message;
  if (lost) {
    say("entry " + std::to_string(e.id) + ": the job " + how + "; the entry is another agent's");
    return g_signals == 0;
  } else if (cancel) {
    status = "cancelled";
    message = "cancelled; its job " + how;
  } else if (st->ok()) {
    status = "done";
  } else if (forwarded > 0) {
    status = "queued";
    message = "put back: its agent was stopped (signal " + std::to_string(g_signal) + ")";
  } else if (code && (*code == kExitPreempted || *code == kExitStoreUnavailable ||
                      *code == kExitRankLost) &&
             e.runs < 3) {
    status = "queued";
    message = "put back after its job " + how + " (run " + std::to_string(e.runs) + " of 3)";
  } else {
    status = "failed";
    message = "its job " + how + (tail.empty() ? "" : ": " + tail);
  }
  record_end(q, o, e, status, code, message);
  return forwarded == 0;
}

}  // namespace

int agent_command(const std::vector<std::string>& args) {
  std::string store, launcher = "auto", log_dir;
  std::vector<std::string> queues;
  std::int64_t ranks = 0, gpus = -1;
  double idle_exit = -1, lease = 60, poll = 2;
  bool once = false;
  po::options_description options(kAgentUsage);
  options.add_options()("help,h", "show this help")(
      "store", po::value<std::string>(&store), "postgresql://user@host:port/database")(
      "queue,q", po::value<std::vector<std::string>>(&queues),
      "serve this queue (repeat for several; default: default)")(
      "np,n", po::value<std::int64_t>(&ranks),
      "ranks of each job (default: SLURM_NTASKS, else 1)")(
      "gpus", po::value<std::int64_t>(&gpus),
      "GPUs this agent has (default: CUDA_VISIBLE_DEVICES, Slurm's count, or /dev/nvidiaN)")(
      "launcher", po::value<std::string>(&launcher)->default_value("auto"),
      "how jobs start: srun, mpirun (xpscale launch), none (one rank, in-process), or auto")(
      "idle-exit", po::value<double>(&idle_exit),
      "exit when nothing was runnable for this many seconds (default: serve until stopped)")(
      "once", po::bool_switch(&once), "run one entry, then exit")(
      "log-dir", po::value<std::string>(&log_dir),
      "write each job's output to DIR/ID-SWEEP.log (default: this agent's own output)")(
      "lease", po::value<double>(&lease)->default_value(60),
      "seconds without a heartbeat after which another agent takes an entry (min 10)")(
      "poll", po::value<double>(&poll)->default_value(2), "seconds between looks at an empty queue");
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(options).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << options << '\n';
    return kExitOk;
  }
  AgentOptions o;
  o.url = queue_store_url(store, "agent");
  o.child_url = url_without_password(o.url);
  o.password = url_password(o.url);
  if (!o.password.empty() && !store.empty())
    say("warning: the --store URL holds a password, which `ps` shows to every user of this "
        "node; put it in PGPASSWORD or ~/.pgpass instead (the jobs get it in PGPASSWORD)");
  if (queues.empty()) queues = {"default"};
  for (const auto& name : queues) check_queue_name(name);
  if (!vm.count("np")) ranks = env_int("SLURM_NTASKS", 1);
  check_count_option("agent: -n", ranks, 1, 1 << 20);
  if (gpus < 0) gpus = detect_gpus();
  check_count_option("agent: --gpus", gpus, 0, 1 << 20);
  if (vm.count("idle-exit")) check_seconds_option("agent: --idle-exit", idle_exit);
  check_seconds_option("agent: --lease", lease);
  if (lease < 10) {
    std::ostringstream got;
    got << lease;
    throw UserError("agent: --lease must be at least 10 seconds, got " + got.str());
  }
  check_seconds_option("agent: --poll", poll);
  if (launcher == "auto")
    launcher = std::getenv("SLURM_JOB_ID") && on_path("srun") ? "srun"
               : ranks > 1                                    ? "mpirun"
                                                              : "none";
  if (launcher != "srun" && launcher != "mpirun" && launcher != "none")
    throw UserError("agent: --launcher must be auto, srun, mpirun or none, got '" + launcher + "'");
  if (launcher == "none" && ranks > 1)
    throw UserError("agent: --launcher none runs one rank; -n " + std::to_string(ranks) +
                    " needs srun or mpirun");
  if (!log_dir.empty()) {
    std::error_code ec;
    fs::create_directories(log_dir, ec);
    if (ec) throw UserError("agent: cannot create --log-dir " + log_dir + ": " + ec.message());
    o.log_dir = fs::absolute(log_dir);
  }
  o.launcher = launcher;
  o.idle_exit_s = vm.count("idle-exit") ? idle_exit : -1;
  o.once = once;
  o.offer.queues = queues;
  o.offer.ranks = ranks;
  o.offer.gpus = gpus;
  o.offer.agent = who_am_i();
  o.offer.lease_s = lease;

  install_stop_handlers();
  const auto q = open_queue(o.url);
  std::string served;
  for (const auto& name : queues) served += (served.empty() ? "'" : ", '") + name + "'";
  say("serving queue" + std::string(queues.size() == 1 ? " " : "s ") + served + " of " +
      q->location() + " with " + std::to_string(ranks) + (ranks == 1 ? " rank" : " ranks") +
      ", " + std::to_string(gpus) + " GPU" + (gpus == 1 ? "" : "s") + ", launcher " + launcher);
  auto idle_since = Clock::now();
  bool waiting_said = false;
  while (!g_signal) {
    std::optional<QueueEntry> e;
    try {
      e = q->claim(o.offer);
    } catch (const StoreError& err) {
      if (!err.transient()) throw;
      say(std::string("the store is unavailable (retrying): ") + err.what());
      nap(std::chrono::seconds(5));
      continue;
    }
    if (!e) {
      const double idle = std::chrono::duration<double>(Clock::now() - idle_since).count();
      if (o.idle_exit_s >= 0 && idle >= o.idle_exit_s) {
        say("nothing to run for " + ago(idle) + ": exiting (--idle-exit)");
        return kExitOk;
      }
      if (!waiting_said) say("waiting for entries");
      waiting_said = true;
      nap(std::chrono::milliseconds(static_cast<std::int64_t>(poll * 1000)));
      continue;
    }
    waiting_said = false;
    if (g_signal) {  // came while the entry was being claimed
      record_end(*q, o, *e, "queued", std::nullopt,
                 "put back: its agent was stopped (signal " + std::to_string(g_signal) + ")");
      return kExitPreempted;
    }
    if (!serve_entry(*q, o, *e)) return kExitPreempted;
    idle_since = Clock::now();
    if (o.once) return kExitOk;
  }
  say("stopped by signal " + std::to_string(g_signal));
  return kExitOk;
}

}  // namespace xpscale::cli
