// Spawning one external trial process and ending its whole tree (process.h).
//
// fork+exec rather than posix_spawn: posix_spawn cannot set
// PR_SET_PDEATHSIG. Everything the child needs is prepared before fork(), so
// the child only makes async-signal-safe calls (the runtime has threads).
#include "xpscale/launcher/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
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
using detail::ProcInfo;
using detail::read_stat;
using detail::send_signal;
using detail::tree_members;

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
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
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

// ---- the reaper --------------------------------------------------------------
//
// Why a process between the rank and the trial: when the rank dies (kill -9,
// a crash, mpirun's abort) nothing of it runs any more, yet the trial's
// whole tree must end. The reaper is the trial's parent and a child
// subreaper (PR_SET_CHILD_SUBREAPER), so every orphan of the tree — a
// setsid daemon, a DataLoader worker whose parent died — is reparented to
// it rather than to init, and it can always find the whole tree: its
// descendants. It watches one end of a socketpair whose other end only the
// rank holds; end of file means the rank is gone. cgroups would serve too,
// but are not writable under Slurm's proctrack/linuxproc or in most
// containers, and need no fallback this way.
//
// Protocol on the socket: reaper -> rank: the trial's pid (pid_t), then,
// when the trial ends, its wait status (int). rank -> reaper: 'T' and a
// grace in ms (int32: the rank began ending the tree, with that grace),
// 'D' (done: the rank has ended the tree; kill what is left now) or end of
// file (the rank died: SIGTERM to the tree, then SIGKILL once the grace —
// what is left of the one 'T' started, else the spawn's orphan_grace — has
// passed).
// SIGTERM, SIGINT or SIGHUP to the reaper itself act like end of file. It
// leads its own process group, out of reach of a kill of the rank's group.
//
// It runs in a fork of a threaded process without exec: async-signal-safe
// calls only (no allocation, no stdio).

struct ReaperPlan {
  int sock;      // the reaper's end of the socketpair
  int grace_ms;  // SIGTERM -> SIGKILL when the rank is gone
};

long now_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void sleep_ms(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  ::nanosleep(&ts, nullptr);
}

// Calls f(pid) for each child of this (single-threaded) process, from
// /proc/self/task/<pid>/children, or a scan of /proc where the kernel lacks
// that file. Async-signal-safe, which is why it does not use
// all_processes()/read_stat() (process_tree.h): those allocate.
template <class F>
void for_each_child(F&& f) {
  const pid_t self = ::getpid();
  char path[64] = "/proc/self/task/";
  {
    char digits[16];
    int n = 0;
    for (pid_t v = self; v > 0; v /= 10) digits[n++] = static_cast<char>('0' + v % 10);
    char* p = path + std::strlen(path);
    while (n > 0) *p++ = digits[--n];
    std::memcpy(p, "/children", 10);
  }
  char buf[8192];
  if (const int fd = ::open(path, O_RDONLY | O_CLOEXEC); fd >= 0) {
    // Read to the end: a number cut by the buffer's end continues in the
    // next read, and only a number followed by a separator is a pid.
    pid_t v = 0;
    bool ok = true;
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) ok = false;
      if (n <= 0) break;
      for (ssize_t i = 0; i < n; ++i) {
        if (buf[i] >= '0' && buf[i] <= '9') {
          v = v * 10 + (buf[i] - '0');
        } else {
          if (v > 0) f(v);
          v = 0;
        }
      }
    }
    ::close(fd);
    if (ok) return;
  }
  const int dir = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return;
  for (;;) {
    const long n = ::syscall(SYS_getdents64, dir, buf, sizeof buf);
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      const auto* d = reinterpret_cast<const dirent64*>(buf + off);
      off += d->d_reclen;
      pid_t pid = 0;
      const char* c = d->d_name;
      for (; *c >= '0' && *c <= '9'; ++c) pid = pid * 10 + (*c - '0');
      if (*c != '\0' || pid <= 0) continue;
      char stat_path[64] = "/proc/";
      std::memcpy(stat_path + 6, d->d_name, static_cast<std::size_t>(c - d->d_name));
      std::memcpy(stat_path + 6 + (c - d->d_name), "/stat", 6);
      const int sfd = ::open(stat_path, O_RDONLY | O_CLOEXEC);
      if (sfd < 0) continue;
      char st[512];
      const ssize_t m = ::read(sfd, st, sizeof st - 1);
      ::close(sfd);
      if (m <= 0) continue;
      st[m] = '\0';
      const char* rp = std::strrchr(st, ')');  // "pid (comm) S ppid ..."
      if (rp == nullptr || rp[1] == '\0' || rp[2] == '\0') continue;
      pid_t ppid = 0;
      for (const char* q = rp + 4; *q >= '0' && *q <= '9'; ++q) ppid = ppid * 10 + (*q - '0');
      if (ppid == self) f(pid);
    }
  }
  ::close(dir);
}

// Reaps every ended child but the trial, and sends the trial's status
// once it has ended. The trial itself stays a zombie (waitid WNOWAIT) until
// the reaper is done, so that its pid and process group cannot be reused
// while the rank or the reaper may still signal them. Returns whether a
// child other than the ended trial is left.
bool reap_all(pid_t trial, int sock, bool& trial_reported) {
  bool others = false;
  for_each_child([&](pid_t c) {
    if (c == trial) return;
    if (::waitpid(c, nullptr, WNOHANG) == 0) others = true;
  });
  if (!trial_reported) {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(trial), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == trial) {
      // As a waitpid() status, for ExitStatus::from_wait_status().
      const int status = info.si_code == CLD_EXITED
                             ? (info.si_status & 0xff) << 8
                             : (info.si_status & 0x7f) | (info.si_code == CLD_DUMPED ? 0x80 : 0);
      ::send(sock, &status, sizeof status, MSG_NOSIGNAL);
      trial_reported = true;
    }
  }
  return others || !trial_reported;
}

// Ends every descendant: SIGTERM (and SIGCONT) once to each, for grace_ms,
// then SIGKILL until none is left (at most 5 s: a process stuck in the
// kernel cannot be helped). Orphans reparent here, so killing a parent
// brings its children within reach.
[[noreturn]] void end_everything(pid_t trial, int sock, bool& trial_reported, long grace_ms) {
  static pid_t signalled[4096];
  std::size_t n_signalled = 0;
  const long term_deadline = now_ms() + grace_ms;
  bool group_signalled = false;
  while (reap_all(trial, sock, trial_reported) && now_ms() < term_deadline) {
    if (!group_signalled) {
      ::kill(-trial, SIGTERM);
      ::kill(-trial, SIGCONT);
      group_signalled = true;
    }
    for_each_child([&](pid_t c) {
      for (std::size_t i = 0; i < n_signalled; ++i)
        if (signalled[i] == c) return;
      ::kill(c, SIGTERM);
      ::kill(c, SIGCONT);
      if (n_signalled < std::size(signalled)) signalled[n_signalled++] = c;
    });
    sleep_ms(std::min(20L, std::max(1L, term_deadline - now_ms())));
  }
  const long kill_deadline = now_ms() + 5000;
  while (reap_all(trial, sock, trial_reported) && now_ms() < kill_deadline) {
    ::kill(-trial, SIGKILL);
    for_each_child([&](pid_t c) {
      if (c != trial || !trial_reported) ::kill(c, SIGKILL);
    });
    sleep_ms(2);
  }
  ::waitpid(trial, nullptr, WNOHANG);  // the zombie kept so far
  ::_exit(0);
}

[[noreturn]] void run_reaper(const ReaperPlan& r, const ChildPlan& c) {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);
  struct sigaction ign = dfl;
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ign, nullptr);
  // Its own process group: mpirun's orted (and Slurm) kill a rank's whole
  // process group when they abort a job, and the reaper must outlive the
  // rank to end the tree.
  if (::setpgid(0, 0) != 0) ::_exit(126);
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) ::_exit(126);
  if (::getppid() != c.parent) ::_exit(126);  // the rank is already gone
  // Signals arrive through a signalfd; the rest stay blocked (as the rank
  // blocked every signal around fork()) and the trial resets its mask.
  sigset_t watched;
  sigemptyset(&watched);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&watched, sig);
  ChildPlan trial_plan = c;
  trial_plan.parent = ::getpid();
  // _Fork, not fork: no pthread_atfork handlers (MPI's, CUDA's) in a
  // process that is itself a fork of a threaded one.
  const pid_t trial = ::_Fork();
  if (trial == 0) run_child(trial_plan);
  if (trial < 0) ::_exit(126);
  ::send(r.sock, &trial, sizeof trial, MSG_NOSIGNAL);
  // Nothing but the socket: the rank's files, pipes and sockets must not be
  // held open by the reaper (an end of file elsewhere depends on it).
  if (::close_range(0, static_cast<unsigned>(r.sock) - 1, 0) != 0 ||
      ::close_range(static_cast<unsigned>(r.sock) + 1, ~0U, 0) != 0)
    for (int fd = 0; fd < c.max_fd; ++fd)
      if (fd != r.sock) ::close(fd);
  const int sfd = ::signalfd(-1, &watched, SFD_CLOEXEC);
  bool reported = false;
  long term_deadline = -1;  // set by 'T': the rank began ending the tree
  auto grace_left = [&] {
    return term_deadline < 0 ? static_cast<long>(r.grace_ms)
                             : std::max(0L, term_deadline - now_ms());
  };
  for (;;) {
    pollfd fds[2] = {{r.sock, POLLIN, 0}, {sfd, POLLIN, 0}};
    ::poll(fds, sfd >= 0 ? 2 : 1, 1000);  // the timeout reaps orphans now and then
    reap_all(trial, r.sock, reported);
    if (sfd >= 0 && (fds[1].revents & POLLIN)) {
      signalfd_siginfo info[8];
      const ssize_t n = ::read(sfd, info, sizeof info);
      for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof info[0]); ++i)
        if (info[i].ssi_signo != SIGCHLD) end_everything(trial, r.sock, reported, grace_left());
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char cmd = 0;
      const ssize_t n = ::recv(r.sock, &cmd, 1, MSG_DONTWAIT);
      if (n == 1 && cmd == 'D') end_everything(trial, r.sock, reported, 0);
      std::int32_t ms = 0;
      if (n == 1 && cmd == 'T' && ::recv(r.sock, &ms, sizeof ms, MSG_WAITALL) == sizeof ms)
        term_deadline = now_ms() + ms;
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        end_everything(trial, r.sock, reported, grace_left());
    }
  }
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
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    throw Error("cannot create a socket to start '" + name + "': " + errno_text(errno));
  Fd rank_end = high_fd(Fd(pair[0]), "the reaper socket");
  Fd reaper_end = high_fd(Fd(pair[1]), "the reaper socket");
  const ReaperPlan reaper_plan{
      reaper_end.get(),
      static_cast<int>(std::clamp<long long>(spec.orphan_grace.count(), 0, 24LL * 3600 * 1000))};

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
  const pid_t reaper = ::fork();
  if (reaper == 0) run_reaper(reaper_plan, plan);
  const int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (reaper < 0) throw Error("cannot run '" + name + "': fork: " + errno_text(fork_errno));
  reaper_end.reset();
  error_write.reset();
  metrics_write.reset();
  p.reaper_ = reaper;
  p.sock_ = rank_end.release();  // from here on, p's destructor releases the reaper
  pid_t pid = -1;
  std::size_t have = 0;
  pollfd ready{p.sock_, POLLIN, 0};
  while (::poll(&ready, 1, 10000) < 0 && errno == EINTR) {
  }
  while (ready.revents != 0 && have < sizeof pid) {
    const ssize_t n = ::recv(p.sock_, reinterpret_cast<char*>(&pid) + have, sizeof pid - have, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    have += static_cast<std::size_t>(n);
  }
  if (have < sizeof pid)
    throw Error("cannot run '" + name + "': the process that watches it (pid " +
                std::to_string(reaper) + ") did not start it");
  p.pid_ = pid;  // from here on, p's destructor ends the tree if we throw

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
    p.reap_child(0);
    p.release_reaper();
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
  // The reaper reaps the child only after it ended, so its entry exists
  // unless it has already exited (then it has no tree to match either).
  const auto stat = read_stat(pid);
  p.start_ticks_ = stat ? stat->start : 0;
  p.metrics_fd_ = metrics_read.release();
  return p;
}

Process::Process(Process&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      name_(std::move(o.name_)),
      start_ticks_(o.start_ticks_),
      reaper_(std::exchange(o.reaper_, -1)),
      sock_(std::exchange(o.sock_, -1)),
      metrics_fd_(std::exchange(o.metrics_fd_, -1)),
      partial_(std::move(o.partial_)),
      discarding_(o.discarding_),
      cut_lines_(o.cut_lines_),
      status_(o.status_),
      cleaned_(o.cleaned_),
      told_reaper_(o.told_reaper_) {}

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    destroy();
    pid_ = std::exchange(o.pid_, -1);
    name_ = std::move(o.name_);
    start_ticks_ = o.start_ticks_;
    reaper_ = std::exchange(o.reaper_, -1);
    sock_ = std::exchange(o.sock_, -1);
    metrics_fd_ = std::exchange(o.metrics_fd_, -1);
    partial_ = std::move(o.partial_);
    discarding_ = o.discarding_;
    cut_lines_ = o.cut_lines_;
    status_ = o.status_;
    cleaned_ = o.cleaned_;
    told_reaper_ = o.told_reaper_;
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
  release_reaper();
  pid_ = -1;
  if (metrics_fd_ >= 0) ::close(std::exchange(metrics_fd_, -1));
}

void Process::release_reaper() noexcept {
  if (sock_ >= 0) {
    const char done = 'D';  // kill what is left now: the grace was given
    [[maybe_unused]] const ssize_t n = ::send(sock_, &done, 1, MSG_NOSIGNAL);
    ::close(std::exchange(sock_, -1));
  }
  if (reaper_ > 0) {
    while (::waitpid(reaper_, nullptr, 0) < 0 && errno == EINTR) {
    }
    reaper_ = -1;
  }
}

void Process::reap_child(int options) {
  if (status_) return;
  int status = 0;
  std::size_t have = 0;
  while (have < sizeof status) {
    const int flags = (options & WNOHANG) && have == 0 ? MSG_DONTWAIT : 0;
    const ssize_t n = sock_ < 0 ? 0
                                : ::recv(sock_, reinterpret_cast<char*>(&status) + have,
                                         sizeof status - have, flags);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      // The reaper is gone without a status (killed): its death sent the
      // child SIGKILL (PR_SET_PDEATHSIG).
      status_ = ExitStatus{0, SIGKILL, false};
      return;
    }
    have += static_cast<std::size_t>(n);
  }
  status_ = ExitStatus::from_wait_status(status);
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
    sleep_on(sock_, sock_ >= 0 ? left : std::min(left, milliseconds(5)));
  }
}

ExitStatus Process::terminate_tree(milliseconds grace) {
  if (pid_ < 0) throw Error("Process::terminate_tree() on an empty Process");
  std::vector<ProcInfo> members;
  std::set<std::pair<pid_t, unsigned long long>> signalled;
  // Reaps what can be reaped, rescans, and returns how many members still run.
  auto scan = [&] {
    reap_child(WNOHANG);
    members = tree_members(all_processes(), pid_, start_ticks_, !status_, reaper_);
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
  if (sock_ >= 0 && !told_reaper_) {  // if this process dies now, the reaper keeps the deadline
    char msg[1 + sizeof(std::int32_t)] = {'T'};
    const auto ms = static_cast<std::int32_t>(std::clamp<long long>(grace.count(), 0, INT32_MAX));
    std::memcpy(msg + 1, &ms, sizeof ms);
    told_reaper_ = ::send(sock_, msg, sizeof msg, MSG_NOSIGNAL) == sizeof msg;
  }
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
    sleep_on(status_ ? -1 : sock_, std::min(pause, left));
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
  cleaned_ = true;
  release_reaper();
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
