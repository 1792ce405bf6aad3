#include "xpscale/store/store_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "xpscale/store/store.h"

namespace xpscale {
namespace {

std::string this_host() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

std::string holder_text() {
  std::string text = "host " + this_host() + ", pid " + std::to_string(::getpid());
  if (const char* job = std::getenv("SLURM_JOB_ID"); job && *job)
    text += ", Slurm job " + std::string(job);
  const std::time_t now = std::time(nullptr);
  char when[64] = {};
  std::tm tm{};
  if (::gmtime_r(&now, &tm) && std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm))
    text += ", since " + std::string(when);
  return text;
}

std::string read_all(int fd) {
  std::string text;
  char buf[512];
  off_t at = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, at);
    if (n <= 0 || text.size() > 4096) break;
    text.append(buf, static_cast<std::size_t>(n));
    at += n;
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\0')) text.pop_back();
  return text;
}

}  // namespace

bool held_on_this_host(const std::string& holder) {
  return holder.starts_with("host " + this_host() + ", ");
}

std::filesystem::path lock_path(const std::filesystem::path& store) {
  return store.string() + ".lock";
}

StoreLock::StoreLock(const std::filesystem::path& store) : path_(lock_path(store)) {
  // Read-write, also because NFS grants an exclusive flock only on a file
  // open for writing.
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd_ < 0)
    throw StoreError("cannot create the lock file " + path_.string() + ": " + std::strerror(errno));
  int rc;
  do rc = ::flock(fd_, LOCK_EX | LOCK_NB);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    const int err = errno;
    std::string holder = err == EWOULDBLOCK ? read_all(fd_) : "";
    ::close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK)
      throw StoreError("cannot lock " + path_.string() + ": " + std::strerror(err));
    throw UserError("another xpscale run is using " + store.parent_path().string() + " (" +
                    (holder.empty() ? "holder unknown" : holder) +
                    "); two runs on one out_dir would run every trial twice. Wait for it to "
                    "end, stop it, or choose another out_dir");
  }
  // Ours now: a dead holder's text is replaced (best effort: the text only
  // serves a second run's error message).
  const std::string text = holder_text() + "\n";
  [[maybe_unused]] const int truncated = ::ftruncate(fd_, 0);
  [[maybe_unused]] const ssize_t written = ::pwrite(fd_, text.data(), text.size(), 0);
}

std::optional<std::string> lock_holder(const std::filesystem::path& store) {
  const auto path = lock_path(store);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;  // never locked
  int rc;
  do rc = ::flock(fd, LOCK_SH | LOCK_NB);
  while (rc != 0 && errno == EINTR);
  std::optional<std::string> holder;
  if (rc != 0 && errno == EWOULDBLOCK) {
    holder = read_all(fd);
    if (holder->empty()) holder = "holder unknown";
  }
  ::close(fd);  // releases the shared lock we may have taken
  return holder;
}

StoreLock::~StoreLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock; the file stays for the next run
}

}  // namespace xpscale
