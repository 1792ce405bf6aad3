#include "xpscale/launcher/external_trial.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "xpscale/config/command.h"
#include "xpscale/coordinator/preemption.h"
#include "xpscale/core/text.h"
#include "xpscale/launcher/gpu_binding.h"
#include "xpscale/launcher/process.h"

extern char** environ;

namespace xpscale::launcher {
namespace {

namespace fs = std::filesystem;
using collectives::DataType;
using collectives::ReduceOp;
using Clock = std::chrono::steady_clock;

// A TCP port that is free on this host now (bound to port 0, then released).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Error(std::string("socket() for a free MASTER_PORT: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(std::string("finding a free MASTER_PORT: ") + std::strerror(err));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool starts_with_any(std::string_view kv, std::initializer_list<std::string_view> prefixes) {
  for (auto p : prefixes)
    if (kv.substr(0, p.size()) == p) return true;
  return false;
}

void write_file_atomic(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.flush()) throw Error("cannot write " + tmp.string() + ": " + std::strerror(errno));
  }
  fs::rename(tmp, path);
}

// Metrics lines nested deeper than this are refused before parsing: a
// copy or destruction of a deeply nested JSON value recurses once per level,
// and a 200 KB line of '[' would overflow the rank's stack.
constexpr int kMaxMetricsDepth = 64;
// Steps beyond 2^53 cannot be told apart as doubles in reports and plots.
constexpr std::int64_t kMaxStep = std::int64_t{1} << 53;

// True when the JSON text nests arrays/objects at most max_depth deep
// (brackets inside strings do not count).
bool nesting_within(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

// The directory of xpscale's wandb shim (python/xpscale/_wandb: a `wandb`
// package alone in it), or empty: installed beside the command
// (<prefix>/bin/xpscale -> <prefix>/XPSCALE_WANDB_SHIM_INSTALL_DIR), else
// the build tree's (python/CMakeLists.txt copies it there).
fs::path wandb_shim_dir() {
  std::vector<fs::path> candidates;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
#ifdef XPSCALE_WANDB_SHIM_INSTALL_DIR
  if (!ec) candidates.push_back(exe.parent_path().parent_path() / XPSCALE_WANDB_SHIM_INSTALL_DIR);
#endif
#ifdef XPSCALE_WANDB_SHIM_BUILD_DIR
  candidates.emplace_back(XPSCALE_WANDB_SHIM_BUILD_DIR);
#endif
  for (const auto& dir : candidates)
    if (fs::exists(dir / "wandb" / "__init__.py", ec)) return dir;
  return {};
}

class Runner {
 public:
  Runner(const SweepConfig& config, ExternalTrialOptions options, Trial& trial)
      : config_(config), options_(options), trial_(trial) {}

  void run() {
    const auto& info = trial_.info();
    // The group agrees on one port, found on the leader's host.
    std::int64_t port = trial_.is_leader() ? free_port() : 0;
    trial_.comm().broadcast(&port, 1, DataType::kI64, 0);

    const fs::path logs = info.trial_dir / "logs";
    fs::create_directories(logs);
    trial_.checkpoint_dir();  // creates it: the process may write there
    const std::string stem =
        "attempt" + std::to_string(info.attempt) + ".rank" + std::to_string(info.group_rank);
    SpawnSpec spec;
    spec.stdout_path = logs / (stem + ".out");
    spec.stderr_path = logs / (stem + ".err");
    control_path_ = logs / (stem + ".control");
    std::error_code ignored;
    fs::remove(control_path_, ignored);  // a previous run's decision is not this one's
    fs::remove(polling_path(), ignored);
    stderr_path_ = spec.stderr_path;
    const fs::path params_file = info.trial_dir / "params.json";
    write_file_atomic(params_file, args_json(config_, info.params) + "\n");
    CommandContext context;
    context.args_json_file = params_file.string();
    if (uses_interpreter(config_)) {
      // W&B's agent runs `python`; a node with only python3 gets that.
      const char* path = std::getenv("PATH");
      auto interpreter = find_interpreter(path ? path : "");
      if (!interpreter)
        throw TrialFailed(
            "${interpreter}: neither python nor python3 is on this node's PATH (" +
                std::string(path ? path : "") + "); install Python or write its path in 'command'",
            "");
      context.interpreter = *interpreter;
    }
    spec.argv = build_command(config_, info.params, context);
    spec.env = environment(static_cast<int>(port));
    spec.orphan_grace = options_.kill_grace;

    std::optional<Process> process;
    std::string spawn_error;
    try {
      process.emplace(Process::spawn(spec));
    } catch (const std::exception& e) {
      spawn_error = e.what();
    }
    supervise(process, spawn_error);
  }

 private:
  std::vector<std::string> environment(int port) const {
    const auto& info = trial_.info();
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      std::string_view kv(*e);
      if (starts_with_any(kv, {"OMPI_", "PMIX_", "PMI_", "OPAL_", "ORTE_",
                               "XPSCALE_METRICS_FD=", "RANK=", "WORLD_SIZE=", "LOCAL_RANK=",
                               "LOCAL_WORLD_SIZE=", "MASTER_ADDR=", "MASTER_PORT="}))
        continue;
      if (starts_with_any(kv, {"PYTHONPATH=", "XPSCALE_WANDB="})) continue;  // wandb_environment()
      if (config_.resources.gpus_per_rank > 0 && kv.substr(0, 21) == "CUDA_VISIBLE_DEVICES=")
        continue;
      env.emplace_back(kv);
    }
    const std::string& me = info.hosts[static_cast<std::size_t>(info.group_rank)];
    int local_rank = 0, local_size = 0;
    for (int r = 0; r < info.group_size; ++r) {
      if (info.hosts[static_cast<std::size_t>(r)] != me) continue;
      if (r < info.group_rank) ++local_rank;
      ++local_size;
    }
    const bool one_host = std::all_of(info.hosts.begin(), info.hosts.end(),
                                      [&](const std::string& h) { return h == info.hosts[0]; });
    auto set = [&](const std::string& k, const std::string& v) { env.push_back(k + "=" + v); };
    set("RANK", std::to_string(info.group_rank));
    set("WORLD_SIZE", std::to_string(info.group_size));
    set("LOCAL_RANK", std::to_string(local_rank));
    set("LOCAL_WORLD_SIZE", std::to_string(local_size));
    set("MASTER_ADDR", one_host ? "127.0.0.1" : info.hosts[0]);
    set("MASTER_PORT", std::to_string(port));
    if (config_.resources.gpus_per_rank > 0) set("CUDA_VISIBLE_DEVICES", trial_devices(info));
    set("XPSCALE_TRIAL_ID", std::to_string(info.id));
    set("XPSCALE_ATTEMPT", std::to_string(info.attempt));
    set("XPSCALE_PARAMS", info.params.dump());
    set("XPSCALE_PARAMS_NESTED", nested_params(config_, info.params).dump());
    if (config_.metric) set("XPSCALE_METRIC", config_.metric->name);  // the wandb shim's summary
    set("XPSCALE_TRIAL_DIR", info.trial_dir.string());
    set("XPSCALE_CHECKPOINT_DIR", info.checkpoint_dir.string());
    set("XPSCALE_CONTROL", control_path_.string());
    wandb_environment(set);
    if (!info.data.empty()) {  // the data: section, for xpscale.data.ShardedDataset.from_config
      nlohmann::json data = nlohmann::json::object();
      for (const auto& [split, spec] : info.data) data[split] = dataset_spec_json(spec);
      std::string text = data.dump();
      if (text.size() > 64 * 1024) {  // Linux refuses environment strings over 128 KiB
        const fs::path file = info.trial_dir / "data.json";
        write_file_atomic(file, text + "\n");
        text = "@" + file.string();
      }
      set("XPSCALE_DATA", text);
    }
    return env;
  }

  // PYTHONPATH with the wandb shim first (the user's after it), and
  // XPSCALE_WANDB, the mode the shim's loader reads. Without the shim the
  // mode is off, said once per process.
  template <class Set>
  void wandb_environment(const Set& set) const {
    const char* user_path = std::getenv("PYTHONPATH");
    std::string mode = wandb_mode_name(config_.wandb);
    static const fs::path shim = wandb_shim_dir();
    if (config_.wandb != WandbMode::kOff && shim.empty()) {
      static bool noted = false;
      if (!noted && trial_.is_leader())
        trial_.log(std::string("note: xpscale's wandb shim is not installed or built; `wandb: ") +
                   mode + "` runs as `wandb: off`");
      noted = true;
      mode = "off";
    }
    std::string path = mode == "off" ? "" : shim.string();
    if (user_path && *user_path) path += (path.empty() ? "" : ":") + std::string(user_path);
    if (!path.empty()) set("PYTHONPATH", path);
    set("XPSCALE_WANDB", mode);
  }

  // The trial process's GPUs (gpu_binding.h), from this rank's own
  // CUDA_VISIBLE_DEVICES as the launcher set it.
  std::string trial_devices(const Trial::Info& info) const {
    const char* v = std::getenv("CUDA_VISIBLE_DEVICES");
    try {
      return select_visible_devices(v ? v : "", info.local_rank, info.local_size,
                                    config_.resources.gpus_per_rank);
    } catch (const Error& e) {
      throw TrialFailed(e.what(), "");
    }
  }

  // Leader: turns the process's metrics lines into reports.
  void forward_metrics(Process& p) {
    for (auto& line : p.read_metrics_lines()) {
      if (trial_.is_leader()) ++lines_;            // acknowledged to should_stop()
      if (!trial_.is_leader() || stop_) continue;  // only the leader's metrics are recorded
      if (Process::is_cut_line(line)) {
        ignored("longer than 1 MiB", line);
        continue;
      }
      if (!nesting_within(line, kMaxMetricsDepth)) {
        ignored("nested deeper than " + std::to_string(kMaxMetricsDepth) + " levels", line);
        continue;
      }
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        ignored("not a JSON object", line);
        continue;
      }
      std::int64_t step = next_step_;
      if (auto it = j.find("step"); it != j.end()) {
        if (it->is_number_integer()) {
          if (it->is_number_unsigned() ? it->get<std::uint64_t>() > std::uint64_t(kMaxStep)
                                       : it->get<std::int64_t>() < 0) {
            ignored("its step is negative or over 2^53", line);
            continue;
          }
          step = it->get<std::int64_t>();
        }
        j.erase("step");
      }
      if (step >= kMaxStep) {
        ignored("its step is over 2^53", line);
        continue;
      }
      next_step_ = step + 1;
      if (trial_.report_as_leader(step, j) == Decision::kStop) {
        // Preemption ends the process gently (supervise()), not at once.
        if (trial_.stop_reason() == "preempted")
          request_preemption();
        else
          stop_ = true;
      }
    }
  }

  // Logs a refused metrics line: the first few in full (escaped), then one
  // count every 10 s, so a flooding trial cannot flood the rank's stderr.
  void ignored(const std::string& why, const std::string& line) {
    ++ignored_;
    const auto now = Clock::now();
    if (ignored_ <= 5) {
      trial_.log("ignored a metrics line: " + why + ": " + escaped(line, 200, Escape::kControl));
      last_ignored_log_ = now;
      logged_ignored_ = ignored_;
    } else if (now - last_ignored_log_ >= std::chrono::seconds(10)) {
      trial_.log("ignored " + std::to_string(ignored_ - logged_ignored_) +
                 " more metrics lines (the last: " + why + ")");
      last_ignored_log_ = now;
      logged_ignored_ = ignored_;
    }
  }

  fs::path polling_path() const { return control_path_.string() + ".polling"; }

  // The leader's stop reason, for every rank (collective).
  std::string group_stop_reason() {
    std::string reason = trial_.stop_reason();
    if (trial_.group_size() == 1) return reason;
    std::int64_t length = static_cast<std::int64_t>(reason.size());
    trial_.comm().broadcast(&length, 1, DataType::kI64, 0);
    std::vector<std::int32_t> words((static_cast<std::size_t>(length) + 3) / 4, 0);
    if (trial_.is_leader()) std::memcpy(words.data(), reason.data(), reason.size());
    if (!words.empty()) trial_.comm().broadcast(words.data(), words.size(), DataType::kI32, 0);
    return std::string(reinterpret_cast<const char*>(words.data()),
                       static_cast<std::size_t>(length));
  }

  // Leader, when its process polls: the decision after the metrics lines
  // read so far, with their count, so that should_stop() right after a
  // report() waits for the answer to that report (xpscale.report counts the
  // lines it writes) rather than seeing it an epoch later. At most one write
  // per tick, and none for a process that does not poll.
  void acknowledge() {
    if (!trial_.is_leader() || lines_ == acked_lines_ || stopping_) return;
    std::error_code ec;
    if (!fs::exists(polling_path(), ec)) return;
    acked_lines_ = lines_;
    if (stop_) return;  // supervise() writes the stop for every rank
    write_control({{"decision", "continue"}, {"lines", lines_}});
  }

  void write_control(const nlohmann::json& j) {
    try {
      write_file_atomic(control_path_, j.dump() + "\n");
    } catch (const std::exception& e) {
      trial_.log(std::string("cannot write the trial's control file: ") + e.what());
    }
  }

  // Tells the process the scheduler's decision (xpscale.trial's
  // should_stop() reads the file): written whole, by rename.
  void write_decision(const std::string& reason) {
    stopping_ = true;
    nlohmann::json j{{"decision", "stop"}, {"reason", reason.empty() ? "stopped" : reason}};
    if (trial_.is_leader()) j["lines"] = lines_;
    write_control(j);  // if it cannot, the tree is ended at once (the process does not poll it)
  }

  void supervise(std::optional<Process>& p, const std::string& spawn_error) {
    const auto start = Clock::now();
    const auto limit = config_.resources.time_limit_s;
    auto tick = std::chrono::milliseconds(1);
    std::optional<ExitStatus> status;
    bool timed_out = false;
    std::optional<Clock::time_point> preempted_at;  // when SIGUSR1 was forwarded
    std::optional<Clock::time_point> stopping_at;   // when the decision was written
    for (;;) {
      if (p && !status) {
        status = p->wait_for(tick);
        forward_metrics(*p);
        if (status) forward_metrics(*p);  // what it wrote just before exiting
        acknowledge();
      }
      // Only a process still running can pass the limit: one that has just
      // exited (seen after this rank was descheduled or stopped) has not.
      if (trial_.is_leader() && limit && p && !status &&
          std::chrono::duration<double>(Clock::now() - start).count() > *limit)
        timed_out = true;
      const bool failed = !p || (status && !status->ok());
      const bool grace_over =
          preempted_at && Clock::now() - *preempted_at >= options_.preempt_grace;
      // A stopped trial whose processes poll should_stop() may end itself
      // within stop_grace (a last checkpoint, its own cleanup); one that
      // does not poll is ended at once.
      const bool polls = fs::exists(polling_path());
      const bool stop_grace_over =
          stopping_at && Clock::now() - *stopping_at >= options_.stop_grace;
      // Group-wide state: [any rank failed, time limit or preemption grace
      // over, any still running, any rank preempted, stop (leader), a rank
      // that does not poll, stop grace over, a rank got SIGTERM/INT/HUP].
      std::array<std::int64_t, 8> state{failed ? 1 : 0,          (timed_out || grace_over) ? 1 : 0,
                                        (p && !status) ? 1 : 0,  preemption_requested() ? 1 : 0,
                                        stop_ ? 1 : 0,           (p && !status && !polls) ? 1 : 0,
                                        stop_grace_over ? 1 : 0, termination_signal()};
      if (trial_.group_size() > 1)
        trial_.comm().allreduce(state.data(), state.data(), state.size(), DataType::kI64,
                                ReduceOp::kMax);
      if (state[4] && !stopping_at) {
        stopping_at = Clock::now();
        stopped_ = true;
        const std::string reason = group_stop_reason();
        if (p && !status) write_decision(reason);
      }
      const bool stop_now = state[4] && (state[5] || state[6]);
      if (state[7]) {
        // SIGTERM, SIGINT or SIGHUP (preemption.h): no SIGUSR1 and no
        // preempt grace; the tree is ended now, with kill_grace.
        if (!preempted_at) preempted_at = Clock::now();
        interrupted_by_ = static_cast<int>(state[7]);
        break;
      }
      if (state[3] && state[2] && !preempted_at) {
        // The process gets SIGUSR1 to checkpoint (Slurm may have sent it one
        // already: under srun the whole step is signalled), then the grace.
        preempted_at = Clock::now();
        if (p && !status) p->signal_group(SIGUSR1);
      }
      if (state[0] || state[1] || stop_now || !state[2]) break;
      if (!p || status) std::this_thread::sleep_for(tick);
      tick = std::min(tick * 2, std::chrono::milliseconds(50));
    }
    if (p) {
      // Ends the tree if it still runs, and leftovers (daemonised
      // grandchildren) if the child has exited: no orphans either way.
      const ExitStatus end = p->terminate_tree(options_.kill_grace);
      if (!status) killed_ = true;
      if (!status) status = end;
      forward_metrics(*p);
    }
    if (ignored_ > logged_ignored_)
      trial_.log("ignored " + std::to_string(ignored_ - logged_ignored_) + " more metrics lines");
    const std::string tail = file_tail(stderr_path_);
    if (!p) throw TrialFailed(spawn_error, tail);
    // However it ended once told to checkpoint (exit 0, killed by the
    // signal's default action, or by SIGTERM after the grace), the trial
    // resumes from its checkpoint in the next run. Under srun, Slurm signals
    // every process of the step at once, so the trial may die of SIGUSR1
    // before this rank has seen the signal: that is preemption too.
    if (!preempted_at && status && !status->ok() &&
        (status->signal == SIGUSR1 || preemption_requested())) {
      request_preemption();
      preempted_at = Clock::now();
    }
    if (interrupted_by_)
      throw TrialPreempted(std::string("interrupted by SIG") + sigabbrev_np(interrupted_by_));
    if (preempted_at) throw TrialPreempted("preempted");
    if (timed_out) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%g", *limit);
      throw TrialFailed(std::string("passed resources.time_limit (") + buf + " s)", tail);
    }
    // Killed because the trial was stopped or another rank failed, or ended
    // by itself once told to stop: not this rank's failure (logged if it
    // did not end cleanly, since it may have crashed on its own).
    if (stopped_ && !killed_ && status && !status->ok())
      trial_.log("after the stop decision the process " + status->describe());
    if (killed_ || stopped_) return;
    if (!status->ok())
      throw TrialFailed(config_.program.empty() ? "the command " + status->describe()
                                                : config_.program + " " + status->describe(),
                        tail);
  }

  const SweepConfig& config_;
  ExternalTrialOptions options_;
  Trial& trial_;
  fs::path stderr_path_;
  std::int64_t next_step_ = 0;
  std::uint64_t ignored_ = 0, logged_ignored_ = 0;  // refused metrics lines, and how many logged
  Clock::time_point last_ignored_log_{};
  fs::path control_path_;
  std::int64_t lines_ = 0, acked_lines_ = 0;  // the leader's metrics lines read, acknowledged
  bool stopping_ = false;                     // the stop decision was written
  bool stop_ = false;
  bool stopped_ = false;
  bool killed_ = false;
  int interrupted_by_ = 0;  // SIGTERM, SIGINT or SIGHUP ended the trial
};

}  // namespace

TrainFn external_trial(const SweepConfig& config, ExternalTrialOptions options) {
  if (!config.is_external())
    throw UserError(config.path +
                    " has no 'program' or 'command': `xpscale run` runs external trials. For "
                    "trials in C++, link a trainer with xpscale::run(argc, argv, train) and run "
                    "it with --sweep " +
                    config.path);
  // W&B runs `program` from the current directory: a missing one would
  // fail every trial, one by one; it fails the run before any starts.
  const bool uses_program =
      !config.program.empty() &&
      (config.command.empty() ||
       std::any_of(config.command.begin(), config.command.end(),
                   [](const std::string& w) { return w.find("${program}") != std::string::npos; }));
  std::error_code ec;
  if (uses_program && !fs::exists(config.program, ec))
    throw UserError(config.path + ": program '" + config.program + "' does not exist (from " +
                    fs::current_path(ec).string() +
                    "); run xpscale from the directory the config's program is relative to");
  return [&config, options](Trial& trial) { Runner(config, options, trial).run(); };
}

}  // namespace xpscale::launcher
