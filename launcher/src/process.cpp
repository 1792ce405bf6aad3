// Spawning one external trial process and ending its whole tree (process.h).
//
// fork+exec rather than posix_spawn: posix_spawn cannot set
// PR_SET_PDEATHSIG. Everything the child needs is prepared before fork(), so
// the child only makes async-signal-safe calls (the runtime has threads).
#include "xpscale/launcher/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <system_error>
#include <thread>

#include "process_tree.h"
#include "xpscale/core/error.h"

namespace xpscale::launcher {
namespace {

using detail::all_processes;
using detail::errno_text;
using detail::Fd;
using detail::pidfd_open;
using detail::ProcInfo;
using detail::read_stat;
using detail::register_live;
using detail::send_signal;
using detail::tree_members;
using detail::unregister_live;

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string quoted(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

// Moves fd to a number >= 10 (close-on-exec), so that the child's dup2() onto
// 0..3 can never clobber a descriptor it still has to copy.
Fd high_fd(Fd fd, const char* what) {
  if (fd.get() < 0) return fd;
  const int moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, 10);
  if (moved < 0)
    throw Error(std::string("fcntl(F_DUPFD_CLOEXEC) for ") + what + ": " + errno_text(errno));
  return Fd(moved);
}

Fd open_output(const std::filesystem::path& path) {
  if (path.empty()) return Fd();
  if (path.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec)
      throw Error("cannot create directory " + quoted(path.parent_path()) +
                  " for trial output: " + ec.message());
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    throw Error("cannot open " + quoted(path) + " for trial output: " + errno_text(errno));
  return high_fd(Fd(fd), "trial output");
}

// ---- the child --------------------------------------------------------------

enum ChildStage : int { kStageSetup = 1, kStageChdir = 2, kStageExec = 3 };

struct ChildPlan {
  char* const* argv;
  char* const* envp;
  const std::vector<const char*>* candidates;
  const char* cwd;                        // nullptr: inherit
  int in_fd, out_fd, err_fd, metrics_fd;  // -1: inherit / none
  int error_fd;
  pid_t parent;
  int max_fd;
};

[[noreturn]] void child_fail(int error_fd, int stage, int err) {
  const int msg[2] = {stage, err};
  [[maybe_unused]] ssize_t n = ::write(error_fd, msg, sizeof msg);
  ::_exit(127);
}

// Runs in the forked child: async-signal-safe calls only.
[[noreturn]] void run_child(const ChildPlan& c) {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int s = 1; s < NSIG; ++s) ::sigaction(s, &dfl, nullptr);  // fails harmlessly for KILL etc.
  if (::setpgid(0, 0) != 0) child_fail(c.error_fd, kStageSetup, errno);
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail(c.error_fd, kStageSetup, errno);
  if (::getppid() != c.parent) ::_exit(127);  // the parent died before prctl
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);  // the parent blocked all around fork()

  const std::pair<int, int> moves[] = {
      {c.in_fd, 0}, {c.out_fd, 1}, {c.err_fd, 2}, {c.metrics_fd, kChildMetricsFd}};
  for (auto [from, to] : moves)
    if (from >= 0 && ::dup2(from, to) < 0) child_fail(c.error_fd, kStageSetup, errno);
  const int first = c.metrics_fd >= 0 ? kChildMetricsFd + 1 : kChildMetricsFd;
  // Close-on-exec rather than close, so the error pipe stays open until exec.
  if (::close_range(first, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
    for (int fd = first; fd < c.max_fd; ++fd)
      if (fd != c.error_fd) ::close(fd);
  if (c.cwd != nullptr && ::chdir(c.cwd) != 0) child_fail(c.error_fd, kStageChdir, errno);

  // execvp's rules: skip candidates that do not exist, remember EACCES; but
  // no fallback to /bin/sh on ENOEXEC.
  int err = ENOENT;
  for (const char* path : *c.candidates) {
    ::execve(path, c.argv, c.envp);
    switch (errno) {
      case EACCES:
        err = EACCES;
        break;
      case ENOENT:
      case ENOTDIR:
      case ESTALE:
      case ENODEV:
      case ETIMEDOUT:
        break;
      default:
        child_fail(c.error_fd, kStageExec, errno);
    }
  }
  if (c.candidates->size() == 1) err = errno;
  child_fail(c.error_fd, kStageExec, err);
}

// Where execvp would look for argv0, with the PATH the child will see.
std::vector<std::string> exec_candidates(const std::string& argv0,
                                         const std::vector<std::string>& env) {
  if (argv0.empty()) return {};
  if (argv0.find('/') != std::string::npos) return {argv0};
  std::string path;
  auto it = std::find_if(env.begin(), env.end(),
                         [](const std::string& e) { return e.starts_with("PATH="); });
  if (it != env.end())
    path = it->substr(5);
  else if (const char* own = std::getenv("PATH"))
    path = own;
  else
    path = "/bin:/usr/bin";
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (true) {
    const std::size_t colon = path.find(':', pos);
    const std::string dir = path.substr(pos, colon == std::string::npos ? colon : colon - pos);
    out.push_back(dir.empty() ? argv0 : dir + "/" + argv0);  // empty entry: current directory
    if (colon == std::string::npos) break;
    pos = colon + 1;
  }
  return out;
}

std::vector<char*> c_array(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

void sleep_on(int pidfd, milliseconds d) {
  if (d <= milliseconds(0)) return;
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(d.count()));  // EINTR: the caller loops
  } else {
    std::this_thread::sleep_for(d);
  }
}

}  // namespace

// ---- ExitStatus ---------------------------------------------------------------

std::string ExitStatus::describe() const {
  if (signal == 0) return "exited with status " + std::to_string(code);
  std::string name;
  if (const char* abbrev = ::sigabbrev_np(signal))
    name = std::string("SIG") + abbrev;
  else if (const char* descr = ::sigdescr_np(signal))
    name = descr;
  else
    name = "unknown signal";
  return "killed by signal " + std::to_string(signal) + " (" + name + ")" +
         (core ? ", core dumped" : "");
}

ExitStatus ExitStatus::from_wait_status(int status) {
  ExitStatus s;
  if (WIFEXITED(status)) {
    s.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    s.signal = WTERMSIG(status);
    s.core = WCOREDUMP(status);
  }
  return s;
}

// ---- Process ------------------------------------------------------------------

Process Process::spawn(const SpawnSpec& spec) {
  if (spec.argv.empty()) throw UserError("cannot run an empty command");
  const std::string& name = spec.argv[0];

  Fd out = open_output(spec.stdout_path);
  Fd err = open_output(spec.stderr_path);
  Fd in = high_fd(Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC)), "/dev/null");
  if (in.get() < 0) throw Error("cannot open /dev/null: " + errno_text(errno));
  Fd metrics_read, metrics_write, error_read, error_write;
  int fds[2];
  if (spec.metrics_pipe) {
    if (::pipe2(fds, O_CLOEXEC) != 0)
      throw Error("cannot create the metrics pipe for '" + name + "': " + errno_text(errno));
    metrics_read = Fd(fds[0]);
    metrics_write = high_fd(Fd(fds[1]), "the metrics pipe");
    if (::fcntl(metrics_read.get(), F_SETFL, O_NONBLOCK) != 0)
      throw Error("fcntl(O_NONBLOCK) on the metrics pipe: " + errno_text(errno));
  }
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw Error("cannot create a pipe to start '" + name + "': " + errno_text(errno));
  error_read = Fd(fds[0]);
  error_write = high_fd(Fd(fds[1]), "the exec error pipe");

  std::vector<std::string> argv = spec.argv;
  std::vector<std::string> env = spec.env;
  if (spec.metrics_pipe) {
    std::erase_if(env, [](const std::string& e) { return e.starts_with("XPSCALE_METRICS_FD="); });
    env.push_back("XPSCALE_METRICS_FD=" + std::to_string(kChildMetricsFd));
  }
  const std::vector<char*> argv_c = c_array(argv);
  const std::vector<char*> env_c = c_array(env);
  const std::vector<std::string> candidates = exec_candidates(name, env);
  std::vector<const char*> candidates_c;
  for (const auto& c : candidates) candidates_c.push_back(c.c_str());
  const std::string cwd = spec.cwd.string();
  const long open_max = ::sysconf(_SC_OPEN_MAX);

  Process p;
  p.name_ = name;
  const pid_t self = ::getpid();
  for (const auto& proc : all_processes())
    if (proc.ppid == self) p.preexisting_.emplace_back(proc.pid, proc.start);

  const ChildPlan plan{argv_c.data(),
                       env_c.data(),
                       &candidates_c,
                       cwd.empty() ? nullptr : cwd.c_str(),
                       in.get(),
                       out.get(),
                       err.get(),
                       metrics_write.get(),
                       error_write.get(),
                       self,
                       open_max > 0 && open_max < 65536 ? static_cast<int>(open_max) : 65536};
  // Block every signal across fork() so that no handler of this process runs
  // in the child before it resets the dispositions.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const pid_t pid = ::fork();
  if (pid == 0) run_child(plan);
  const int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) throw Error("cannot run '" + name + "': fork: " + errno_text(fork_errno));
  p.pid_ = pid;         // from here on, p's destructor ends the child if we throw
  ::setpgid(pid, pid);  // also done by the child; fails harmlessly once it has exec'd
  error_write.reset();
  metrics_write.reset();

  int msg[2];
  std::size_t got = 0;
  while (got < sizeof msg) {
    const ssize_t n =
        ::read(error_read.get(), reinterpret_cast<char*>(msg) + got, sizeof msg - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got == sizeof msg) {  // the child could not exec and has exited with 127
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    p.pid_ = -1;
    const std::string what = errno_text(msg[1]);
    switch (msg[0]) {
      case kStageChdir:
        throw UserError("cannot run '" + name + "': cannot change to directory " +
                        quoted(spec.cwd) + ": " + what);
      case kStageExec:
        throw UserError("cannot run '" + name + "': " + what);
      default:
        throw Error("cannot run '" + name + "': setting up the child process failed: " + what);
    }
  }
  const auto stat = read_stat(pid);  // the child is unreaped, so its entry exists
  p.start_ticks_ = stat ? stat->start : 0;
  p.pidfd_ = pidfd_open(pid);  // -1 where unsupported: wait_for() then sleeps
  p.metrics_fd_ = metrics_read.release();
  register_live(pid, p.start_ticks_);
  return p;
}

Process::Process(Process&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      name_(std::move(o.name_)),
      start_ticks_(o.start_ticks_),
      pidfd_(std::exchange(o.pidfd_, -1)),
      metrics_fd_(std::exchange(o.metrics_fd_, -1)),
      partial_(std::move(o.partial_)),
      discarding_(o.discarding_),
      cut_lines_(o.cut_lines_),
      status_(o.status_),
      cleaned_(o.cleaned_),
      preexisting_(std::move(o.preexisting_)) {}

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    destroy();
    pid_ = std::exchange(o.pid_, -1);
    name_ = std::move(o.name_);
    start_ticks_ = o.start_ticks_;
    pidfd_ = std::exchange(o.pidfd_, -1);
    metrics_fd_ = std::exchange(o.metrics_fd_, -1);
    partial_ = std::move(o.partial_);
    discarding_ = o.discarding_;
    cut_lines_ = o.cut_lines_;
    status_ = o.status_;
    cleaned_ = o.cleaned_;
    preexisting_ = std::move(o.preexisting_);
  }
  return *this;
}

Process::~Process() { destroy(); }

void Process::destroy() noexcept {
  if (pid_ >= 0 && !cleaned_) {
    try {
      terminate_tree(std::chrono::seconds(2));
    } catch (...) {  // a destructor must not throw; terminate_tree() reports to callers
    }
  }
  if (pid_ >= 0) unregister_live(pid_);
  pid_ = -1;
  if (pidfd_ >= 0) ::close(std::exchange(pidfd_, -1));
  if (metrics_fd_ >= 0) ::close(std::exchange(metrics_fd_, -1));
}

void Process::reap_child(int options) {
  if (status_) return;
  int status = 0;
  pid_t r;
  do r = ::waitpid(pid_, &status, options);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    throw Error("waitpid(" + std::to_string(pid_) + ") for '" + name_ + "': " + errno_text(errno));
  if (r == pid_) {
    status_ = ExitStatus::from_wait_status(status);
    if (pidfd_ >= 0) ::close(std::exchange(pidfd_, -1));
  }
}

std::optional<ExitStatus> Process::poll() {
  if (pid_ < 0) throw Error("Process::poll() on an empty Process");
  reap_child(WNOHANG);
  return status_;
}

std::optional<ExitStatus> Process::wait_for(milliseconds timeout) {
  const auto deadline = Clock::now() + std::max(timeout, milliseconds(0));
  while (true) {
    if (auto s = poll()) return s;
    const auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now());
    if (left <= milliseconds(0)) return std::nullopt;
    sleep_on(pidfd_, pidfd_ >= 0 ? left : std::min(left, milliseconds(5)));
  }
}

ExitStatus Process::terminate_tree(milliseconds grace) {
  if (pid_ < 0) throw Error("Process::terminate_tree() on an empty Process");
  const pid_t self = ::getpid();
  std::vector<ProcInfo> members;
  std::set<std::pair<pid_t, unsigned long long>> signalled;
  // Reaps what can be reaped, rescans, and returns how many members still run.
  auto scan = [&] {
    reap_child(WNOHANG);
    for (const auto& m : members)
      if (m.ppid == self && m.state == 'Z' && m.pid != pid_) ::waitpid(m.pid, nullptr, WNOHANG);
    members = tree_members(all_processes(), pid_, start_ticks_, !status_, preexisting_);
    return std::count_if(members.begin(), members.end(),
                         [](const ProcInfo& m) { return m.state != 'Z'; });
  };
  auto group_alive = [&] {
    return !status_ || std::any_of(members.begin(), members.end(), [&](const ProcInfo& m) {
      return m.pgrp == pid_ && m.state != 'Z';
    });
  };
  bool group_signalled = false;
  // SIGTERM goes once to each process (a trainer may checkpoint in its
  // handler); SIGKILL is repeated until nothing is left.
  auto signal_all = [&](int sig) {
    const bool term = sig == SIGTERM;
    // killpg() is atomic against forks inside the group.
    if ((!term || !group_signalled) && group_alive()) ::killpg(pid_, sig);
    for (const auto& m : members) {
      if (m.state == 'Z' || (term && !signalled.insert({m.pid, m.start}).second)) continue;
      send_signal(m, sig);
      if (term) send_signal(m, SIGCONT);  // a stopped process cannot act on SIGTERM
    }
    if (term && !group_signalled && group_alive()) ::killpg(pid_, SIGCONT);
    group_signalled = group_signalled || term;
  };

  const auto term_deadline = Clock::now() + std::max(grace, milliseconds(0));
  auto pause = milliseconds(1);
  bool done = false;
  while (true) {
    const auto running = scan();
    if (running == 0 && status_) {
      done = true;
      break;
    }
    if (Clock::now() >= term_deadline) break;
    signal_all(SIGTERM);
    const auto left = std::chrono::ceil<milliseconds>(term_deadline - Clock::now());
    sleep_on(status_ ? -1 : pidfd_, std::min(pause, left));
    pause = std::min(pause * 2, milliseconds(20));
  }
  const auto kill_deadline = Clock::now() + std::chrono::seconds(5);
  while (!done) {
    signal_all(SIGKILL);
    std::this_thread::sleep_for(milliseconds(1));
    const auto running = scan();
    if (running == 0) {
      reap_child(0);  // it has been killed; the wait is short
      scan();
      done = true;
    } else if (Clock::now() >= kill_deadline) {
      std::string pids;
      for (const auto& m : members)
        if (m.state != 'Z') pids += " " + std::to_string(m.pid) + " (state " + m.state + ")";
      throw Error("processes of trial '" + name_ + "' (pid " + std::to_string(pid_) +
                  ") survived SIGKILL for 5 s:" + pids);
    }
  }
  for (const auto& m : members)
    if (m.ppid == self && m.state == 'Z' && m.pid != pid_) ::waitpid(m.pid, nullptr, WNOHANG);
  cleaned_ = true;
  unregister_live(pid_);
  return *status_;
}

void Process::signal_group(int sig) {
  if (pid_ < 0) throw Error("Process::signal_group() on an empty Process");
  if (::killpg(pid_, sig) != 0 && errno != ESRCH)
    throw Error("cannot send signal " + std::to_string(sig) + " to the process group of '" + name_ +
                "' (" + std::to_string(pid_) + "): " + errno_text(errno));
}

std::vector<std::string> Process::read_metrics_lines() {
  std::vector<std::string> lines;
  auto append = [&](const char* data, std::size_t len) {
    if (discarding_) return;
    const std::size_t room = kMaxMetricsLine - partial_.size();
    if (len <= room) {
      partial_.append(data, len);
      return;
    }
    partial_.append(data, room);
    partial_ += kCutLineMarker;
    lines.push_back(std::move(partial_));
    partial_.clear();
    discarding_ = true;
    ++cut_lines_;
  };
  constexpr std::size_t kMaxPerCall = std::size_t{16} << 20;
  char buf[65536];
  std::size_t total = 0;
  while (metrics_fd_ >= 0 && total < kMaxPerCall) {
    const ssize_t n = ::read(metrics_fd_, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      throw Error("reading the metrics pipe of '" + name_ + "': " + errno_text(errno));
    }
    if (n == 0) {  // every writer closed: flush the unterminated last line
      if (!discarding_ && !partial_.empty()) lines.push_back(std::move(partial_));
      partial_.clear();
      discarding_ = false;
      ::close(std::exchange(metrics_fd_, -1));
      break;
    }
    total += static_cast<std::size_t>(n);
    const char* p = buf;
    const char* end = buf + n;
    while (p < end) {
      const char* nl =
          static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
      append(p, static_cast<std::size_t>((nl ? nl : end) - p));
      if (nl == nullptr) break;
      if (!discarding_) lines.push_back(std::move(partial_));
      partial_.clear();
      discarding_ = false;
      p = nl + 1;
    }
  }
  return lines;
}

void become_subreaper() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
    throw Error("prctl(PR_SET_CHILD_SUBREAPER): " + errno_text(errno));
}

}  // namespace xpscale::launcher
