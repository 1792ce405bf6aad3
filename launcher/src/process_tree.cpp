// Finding and signalling the process tree of an external trial (process_tree.h).
#include "process_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <system_error>

#include "xpscale/core/error.h"

namespace xpscale::launcher::detail {
namespace {

// Through syscall(): glibc 2.36's <sys/pidfd.h> lacks extern "C" (links fail
// from C++), and older glibc has no wrappers at all.
int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

}  // namespace

std::string errno_text(int err) { return std::system_category().message(err); }

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

std::optional<ProcInfo> read_stat(pid_t pid) {
  char path[48];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  Fd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return std::nullopt;
  char buf[1024];
  ssize_t n;
  do n = ::read(fd.get(), buf, sizeof buf - 1);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  // The command name is in parentheses and may itself contain ") ".
  const char* rparen = std::strrchr(buf, ')');
  if (rparen == nullptr) return std::nullopt;
  ProcInfo p;
  p.pid = pid;
  int ppid = 0, pgrp = 0;
  // state ppid pgrp, 16 fields we skip (session .. itrealvalue), starttime.
  if (std::sscanf(rparen + 1,
                  " %c %d %d %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu",
                  &p.state, &ppid, &pgrp, &p.start) != 4)
    return std::nullopt;
  p.ppid = ppid;
  p.pgrp = pgrp;
  return p;
}

std::vector<ProcInfo> all_processes() {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir("/proc"), &::closedir);
  if (!dir) throw Error("cannot list /proc to find trial processes: " + errno_text(errno));
  std::vector<ProcInfo> out;
  while (const dirent* e = ::readdir(dir.get())) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    if (auto p = read_stat(static_cast<pid_t>(pid))) out.push_back(*p);
  }
  return out;
}

std::vector<ProcInfo> tree_members(const std::vector<ProcInfo>& all, pid_t child,
                                   unsigned long long child_start, bool child_unreaped,
                                   pid_t reaper) {
  std::set<pid_t> in;
  std::multimap<pid_t, const ProcInfo*> children;
  for (const auto& p : all) {
    if (p.pid == reaper) continue;
    children.emplace(p.ppid, &p);
    const bool root = p.pid == child ? child_unreaped && p.start == child_start
                                     : (p.pgrp == child && p.start >= child_start) ||
                                           (reaper > 0 && p.ppid == reaper);
    if (root) in.insert(p.pid);
  }
  std::vector<pid_t> todo(in.begin(), in.end());
  while (!todo.empty()) {
    const pid_t parent = todo.back();
    todo.pop_back();
    for (auto [it, end] = children.equal_range(parent); it != end; ++it)
      if (in.insert(it->second->pid).second) todo.push_back(it->second->pid);
  }
  std::vector<ProcInfo> out;
  for (const auto& p : all)
    if (in.count(p.pid)) out.push_back(p);
  return out;
}

void send_signal(const ProcInfo& p, int sig) {
  Fd fd(pidfd_open(p.pid));
  if (fd.get() < 0) {
    if (errno == ENOSYS) ::kill(p.pid, sig);
    return;  // ESRCH: already gone
  }
  const auto now = read_stat(p.pid);
  if (!now || now->start != p.start) return;
  pidfd_send_signal(fd.get(), sig);
}

}  // namespace xpscale::launcher::detail
