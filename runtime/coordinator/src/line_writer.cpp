#include "xpscale/coordinator/line_writer.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "xpscale/core/error.h"

namespace xpscale::detail {

namespace {

// How long the thread gathers lines before it writes them: "live" to a
// person or a pipe reader all the same.
constexpr auto kGather = std::chrono::milliseconds(10);

bool write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    text.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

LineWriter::LineWriter(int fd) : fd_(fd), thread_([this] { loop(); }) {}

LineWriter::LineWriter(const std::string& path, const std::string& flag)
    : fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)), owned_(true) {
  if (fd_ < 0) throw UserError(flag + ": cannot open " + path + ": " + std::strerror(errno));
  thread_ = std::thread([this] { loop(); });
}

LineWriter::~LineWriter() {
  {
    std::lock_guard lock(mutex_);
    closing_ = true;
  }
  wake_.notify_one();
  thread_.join();
  if (owned_) ::close(fd_);
}

void LineWriter::write(std::string_view text, bool droppable) {
  {
    std::unique_lock lock(mutex_);
    if (pending_.size() > kMaxPending) {
      if (droppable) {
        dropped_ += static_cast<std::uint64_t>(std::count(text.begin(), text.end(), '\n'));
        return;
      }
      written_.wait(lock, [&] { return pending_.size() <= kMaxPending || broken_; });
    }
    if (broken_) return;
    pending_.append(text);
  }
  wake_.notify_one();  // no system call while the writer is busy writing
}

std::uint64_t LineWriter::take_dropped() {
  std::lock_guard lock(mutex_);
  return std::exchange(dropped_, 0);
}

bool LineWriter::drain(double timeout_s) {
  std::unique_lock lock(mutex_);
  const auto done = [&] { return (pending_.empty() && !writing_) || broken_; };
  if (!(timeout_s < 1e6)) {  // infinite: a time point that far would overflow
    written_.wait(lock, done);
    return true;
  }
  return written_.wait_for(lock, std::chrono::duration<double>(timeout_s), done);
}

void LineWriter::loop() {
  // Signals are for the other threads (preemption.h). A closed pipe makes
  // write() fail with EPIPE here rather than end the process by SIGPIPE.
  sigset_t all;
  sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
  std::string batch;
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return !pending_.empty() || closing_; });
    if (pending_.empty()) return;  // closing, and all written
    if (!closing_) {
      // Lines come in bursts (thousands of trials a second): one wakeup and
      // one write() per kGather, not per line, which costs the ranks' cores
      // a context switch each.
      lock.unlock();
      std::this_thread::sleep_for(kGather);
      lock.lock();
    }
    batch.swap(pending_);
    writing_ = true;
    lock.unlock();
    const bool ok = write_all(fd_, batch);
    batch.clear();
    lock.lock();
    writing_ = false;
    if (!ok) {
      broken_ = true;
      pending_.clear();
    }
    written_.notify_all();
  }
}

}  // namespace xpscale::detail
