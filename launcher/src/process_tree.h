#pragma once
// Finding and signalling the process tree of an external trial through /proc
// (the membership rule is written in xpscale/launcher/process.h). Private to
// the launcher.
#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

namespace xpscale::launcher::detail {

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string errno_text(int err);  // strerror, thread-safe

// pidfd_open(2); -1 with errno on failure (ENOSYS on kernels before 5.3).
int pidfd_open(pid_t pid);

// One line of /proc/<pid>/stat.
struct ProcInfo {
  pid_t pid = 0;
  pid_t ppid = 0;
  pid_t pgrp = 0;
  char state = '?';
  unsigned long long start = 0;  // clock ticks after boot
};

// nullopt if the process is gone.
std::optional<ProcInfo> read_stat(pid_t pid);
// Every process; throws Error if /proc cannot be listed.
std::vector<ProcInfo> all_processes();

// The members of the tree of the Process whose child is `child` (started
// by `reaper`), found in `all` by the rule in process.h.
std::vector<ProcInfo> tree_members(const std::vector<ProcInfo>& all, pid_t child,
                                   unsigned long long child_start, bool child_unreaped,
                                   pid_t reaper);

// Signals p unless its pid now names another process (checked through a
// pidfd, so the check cannot race with pid reuse). Errors are ignored: the
// process may have ended meanwhile.
void send_signal(const ProcInfo& p, int sig);

}  // namespace xpscale::launcher::detail
