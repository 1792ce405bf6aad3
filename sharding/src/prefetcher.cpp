#include "prefetcher.h"

#include <algorithm>
#include <chrono>
#include <new>

#include <sys/mman.h>

namespace xpscale::detail {

PieceBytes PieceBytes::allocate(std::size_t size) {
  constexpr std::size_t kHuge = std::size_t{2} << 20;
  size = std::max<std::size_t>(size, 1);
  if (size < kHuge) {
    char* p = static_cast<char*>(std::malloc(size));
    if (p == nullptr) throw std::bad_alloc();
    return {std::unique_ptr<char, Free>(p), size};
  }
  const std::size_t rounded = (size + kHuge - 1) / kHuge * kHuge;
  char* p = static_cast<char*>(std::aligned_alloc(kHuge, rounded));
  if (p == nullptr) throw std::bad_alloc();
  // Advice only: where huge pages are off (transparent_hugepage=never) it
  // fails or does nothing, and the buffer works as any other.
  (void)::madvise(p, rounded, MADV_HUGEPAGE);
  return {std::unique_ptr<char, Free>(p), rounded};
}

Prefetcher::Prefetcher(std::vector<Piece> pieces, Fetch fetch, int threads,
                       std::uint64_t max_bytes_in_flight)
    : pieces_(std::move(pieces)),
      fetch_(std::move(fetch)),
      bound_(max_bytes_in_flight),
      bytes_(pieces_.size()),
      errors_(pieces_.size()),
      ready_(pieces_.size(), 0) {
  const int n = std::max(1, std::min<int>(threads, static_cast<int>(pieces_.size())));
  for (int i = 0; i < n && !pieces_.empty(); ++i) threads_.emplace_back([this] { work(); });
}

Prefetcher::~Prefetcher() {
  {
    const std::lock_guard lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void Prefetcher::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] {
      if (stop_ || next_claim_ >= pieces_.size()) return true;
      const std::uint64_t length = pieces_[next_claim_].length;
      return in_flight_ == 0 || in_flight_ + length <= bound_;
    });
    if (stop_ || next_claim_ >= pieces_.size()) return;
    const std::size_t i = next_claim_++;
    in_flight_ += pieces_[i].length;
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
    lock.unlock();
    PieceBytes bytes;
    std::exception_ptr error;
    try {
      bytes = fetch_(pieces_[i]);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    bytes_[i] = std::move(bytes);
    errors_[i] = error;
    ready_[i] = 1;
    changed_.notify_all();
  }
}

PieceBytes Prefetcher::take(std::size_t i, double& waited_s) {
  std::unique_lock lock(mutex_);
  if (!ready_[i]) {
    const auto start = std::chrono::steady_clock::now();
    changed_.wait(lock, [&] { return ready_[i] != 0; });
    waited_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  in_flight_ -= pieces_[i].length;
  PieceBytes bytes = std::move(bytes_[i]);
  std::exception_ptr error = errors_[i];
  lock.unlock();
  changed_.notify_all();
  if (error) std::rethrow_exception(error);
  return bytes;
}

std::uint64_t Prefetcher::max_in_flight() const {
  const std::lock_guard lock(mutex_);
  return max_in_flight_;
}

void Prefetcher::set_bound(std::uint64_t max_bytes_in_flight) {
  {
    const std::lock_guard lock(mutex_);
    bound_ = max_bytes_in_flight;
  }
  changed_.notify_all();
}

}  // namespace xpscale::detail
