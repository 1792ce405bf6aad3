#pragma once
// One process of an external trial, owned together with its whole process
// tree (design.md: "the runtime owns the whole process tree of each trial and
// ends all of it on stop, timeout or failure").
//
// How the tree is found. Each trial process is started by its own reaper
// (process.cpp): a small fork of this process that is the trial's parent
// and a child subreaper, so every orphan of the tree is reparented to it,
// never to init, and that ends the whole tree when this process dies
// (kill -9, a crash) or is done with it. While this process lives it
// finds the tree in /proc each time it is needed:
//   roots    the child while unreaped; every process whose process group is
//            the child's (the child leads its own group); every child of the
//            reaper (orphans of the tree);
//   members  the roots and, transitively, every process whose parent is a
//            member (this finds descendants that left the group with
//            setsid() as long as their parent lives).
// Signals go through pidfds after re-checking the process start time, so a
// recycled pid is never signalled.
//
// Requirements on the caller:
//   - do not set SIGCHLD to SIG_IGN and do not reap with waitpid(-1, ...):
//     Process reaps its reaper by pid.
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xpscale::launcher {

// The file descriptor number the child finds the metrics pipe on; also the
// value of XPSCALE_METRICS_FD in its environment.
inline constexpr int kChildMetricsFd = 3;

// Metrics lines longer than this (in bytes, without the '\n') are cut.
inline constexpr std::size_t kMaxMetricsLine = std::size_t{1} << 20;

// Appended to the first kMaxMetricsLine bytes of a line that was cut; the
// rest of that line, up to its '\n', is dropped. A returned line is cut if
// and only if its size is greater than kMaxMetricsLine (see is_cut_line()).
inline constexpr std::string_view kCutLineMarker = "[xpscale: line cut at 1 MiB]";

struct SpawnSpec {
  // argv[0] is searched like execvp in the PATH of `env` (the PATH the child
  // will see), or of this process when `env` has none; relative names are
  // taken relative to `cwd`. Never run through a shell, and a file without
  // a #! line is an error (ENOEXEC), not a shell script. Must not be empty.
  std::vector<std::string> argv;
  // The complete environment of the child, "KEY=VALUE". Nothing is
  // inherited, except XPSCALE_METRICS_FD which is set (or replaced) when
  // metrics_pipe is true.
  std::vector<std::string> env;
  // Working directory of the child; empty: this process's.
  std::filesystem::path cwd;
  // Opened O_WRONLY|O_CREAT|O_APPEND with mode 0600 (trial output may hold secrets), parent
  // directories created. Empty: inherit this process's stdout / stderr. The same path may be given
  // for both. stdin is always /dev/null.
  std::filesystem::path stdout_path;
  std::filesystem::path stderr_path;
  // Create a pipe whose write end the child gets on fd kChildMetricsFd, named
  // by XPSCALE_METRICS_FD=3 in its environment.
  bool metrics_pipe = true;
  // When this process dies without ending the tree (kill -9, a crash), the
  // reaper ends it: SIGTERM, this grace, then SIGKILL.
  std::chrono::milliseconds orphan_grace{std::chrono::seconds(10)};
};

// How a process ended: either it exited with `code` (signal == 0) or it was
// killed by `signal` (then code is 0 and `core` says whether it dumped core).
struct ExitStatus {
  int code = 0;
  int signal = 0;
  bool core = false;

  // Exited with status 0.
  bool ok() const { return signal == 0 && code == 0; }
  // "exited with status 3", "killed by signal 9 (SIGKILL)",
  // "killed by signal 11 (SIGSEGV), core dumped".
  std::string describe() const;
  // Decodes a wait status from waitpid().
  static ExitStatus from_wait_status(int status);

  friend bool operator==(const ExitStatus&, const ExitStatus&) = default;
};

// A running (or finished, not yet cleaned up) external process and its tree.
// Move-only; a moved-from Process is empty (pid() == -1) and its destructor
// does nothing. Not thread-safe: use one Process from one thread at a time.
class Process {
 public:
  // Forks and execs spec.argv. The child: leads its own process group
  // (setpgid(0,0)); gets SIGKILL if its reaper dies (PR_SET_PDEATHSIG,
  // re-checked against a reaper that already died); has
  // default signal dispositions and an empty signal mask; has only fds 0-2
  // and (with metrics_pipe) kChildMetricsFd open.
  // Throws UserError "cannot run 'foo': No such file or directory" when the
  // program cannot be executed (not found, permission, bad format, cwd
  // missing; the child is reaped), and Error when a resource of this
  // process fails (opening the output files, pipe, fork).
  static Process spawn(const SpawnSpec& spec);

  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  // If the tree was not cleaned up by terminate_tree(): terminate_tree(2 s),
  // errors swallowed. This also ends leftovers of a child that already exited.
  ~Process();

  // The direct child's pid, also its process group id; -1 if empty.
  pid_t pid() const { return pid_; }

  // Reads, without blocking, what is available on the metrics pipe and
  // returns the complete lines (without '\n'), in order; a partial line stays
  // buffered for the next call. Once every writer has closed the pipe and it
  // is drained, returns the final unterminated line too (if not empty) and
  // closes the pipe (metrics_fd() becomes -1); later calls return nothing.
  // Lines over kMaxMetricsLine bytes are cut (see kCutLineMarker). Reads at
  // most 16 MiB per call, so a flooding child cannot stall the caller.
  // Throws Error if read() fails.
  std::vector<std::string> read_metrics_lines();
  // True for a line that read_metrics_lines() cut.
  static bool is_cut_line(const std::string& line) { return line.size() > kMaxMetricsLine; }
  // How many lines were cut so far.
  std::size_t cut_lines() const { return cut_lines_; }
  // The read end of the metrics pipe (O_NONBLOCK|O_CLOEXEC) for poll(), or
  // -1 when there is none (metrics_pipe false, or drained to the end).
  int metrics_fd() const { return metrics_fd_; }

  // The direct child's exit status if it has ended (waitpid WNOHANG; the
  // status is cached, so later calls return it too), else nullopt. Throws
  // Error if waitpid fails (e.g. someone else reaped the child).
  std::optional<ExitStatus> poll();
  // Waits up to `timeout` (clamped at 0) for the direct child to end; sleeps
  // on a pidfd (short sleeps where pidfds are not supported). Returns the
  // status, or nullopt on timeout. Throws like poll().
  std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout);

  // Ends the whole tree: SIGTERM (then SIGCONT, for stopped processes) to
  // the process group and every member; waits up to `grace` for all members
  // to end, signalling members that appear meanwhile; then SIGKILL to what is
  // left, repeated until nothing is left; reaps the direct child and the
  // orphans that are this process's children. Returns the direct child's
  // exit status (killed by SIGTERM or SIGKILL when it was running). Safe to
  // call after the child exited (then it only ends leftovers, e.g. a
  // daemonised grandchild) and more than once. Throws Error if processes
  // survive SIGKILL for 5 s (e.g. stuck in the kernel) or on a wait failure.
  ExitStatus terminate_tree(std::chrono::milliseconds grace);

  // Sends `sig` to the child's process group (not to members that left it);
  // does nothing once the group is gone. Throws Error on other failures.
  void signal_group(int sig);

 private:
  Process() = default;
  void destroy() noexcept;         // the destructor's work; leaves the Process empty
  void reap_child(int options);    // the child's status from the reaper (WNOHANG: if there)
  void release_reaper() noexcept;  // tells the reaper to finish, and reaps it

  pid_t pid_ = -1;
  std::string name_;                    // argv[0], for messages
  unsigned long long start_ticks_ = 0;  // /proc/<pid>/stat field 22
  pid_t reaper_ = -1;                   // the trial's parent (process.cpp, "the reaper")
  int sock_ = -1;                       // our end of the socket to the reaper
  int metrics_fd_ = -1;
  std::string partial_;      // buffered partial metrics line
  bool discarding_ = false;  // dropping the rest of a cut line
  std::size_t cut_lines_ = 0;
  std::optional<ExitStatus> status_;
  bool cleaned_ = false;      // terminate_tree() completed
  bool told_reaper_ = false;  // the reaper knows terminate_tree()'s deadline
};

// Makes this process the child subreaper of its descendants
// (PR_SET_CHILD_SUBREAPER). Trial trees do not need it (each has its
// reaper); for a program that wants orphans of its own other children.
// Idempotent. Throws Error if prctl fails.
void become_subreaper();

// The last max_bytes (at most) of a file, e.g. a failed trial's stderr tail:
// starts after the first '\n' of that window when the window does not start
// the file and holds another line boundary, else after any leading partial
// UTF-8 character; invalid UTF-8 is replaced by U+FFFD (which may make the
// result longer than max_bytes). "" if the file does not exist. Throws Error
// if it exists but cannot be read.
std::string file_tail(const std::filesystem::path& path, std::size_t max_bytes = 4096);

}  // namespace xpscale::launcher
