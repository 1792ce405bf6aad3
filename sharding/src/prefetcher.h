#pragma once
// Background fetching of a rank's byte ranges, in the order they will be
// needed, by a few threads, with at most max_bytes_in_flight bytes fetched
// or being fetched and not yet taken by the consumer (a piece larger than
// the bound is fetched alone).
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace xpscale::detail {

// A piece's bytes: an uninitialised buffer of at least Piece::length.
struct PieceBytes {
  struct Free {
    void operator()(char* p) const noexcept { std::free(p); }
  };
  std::unique_ptr<char, Free> data;
  std::size_t capacity = 0;

  // A buffer of `size` bytes. One of 2 MiB or more is aligned to 2 MiB and
  // asks for transparent huge pages (madvise), so that its first touch
  // faults once per 2 MiB instead of once per 4 KiB: an epoch's first 4
  // MiB piece waited a median 15 ms for its fresh buffer against 4 ms so
  // (12 runs each, bench/loader's trainer; page faults are dear in a VM).
  static PieceBytes allocate(std::size_t size);
};

struct Piece {
  std::uint32_t shard = 0;
  std::uint64_t offset = 0, length = 0;     // bytes of the shard
  std::uint32_t first_read = 0, count = 0;  // the plan's reads it holds
};

class Prefetcher {
 public:
  using Fetch = std::function<PieceBytes(const Piece&)>;

  Prefetcher(std::vector<Piece> pieces, Fetch fetch, int threads,
             std::uint64_t max_bytes_in_flight);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  const std::vector<Piece>& pieces() const { return pieces_; }
  // The bytes of piece i (each taken once, in any order); blocks until they
  // are fetched and adds the time blocked to `waited_s`. Rethrows the
  // fetch's exception.
  PieceBytes take(std::size_t i, double& waited_s);
  // The most bytes ever in flight at once.
  std::uint64_t max_in_flight() const;
  // Changes the bound on bytes in flight (a read ahead of need starts small).
  void set_bound(std::uint64_t max_bytes_in_flight);

 private:
  void work();

  std::vector<Piece> pieces_;
  Fetch fetch_;
  std::uint64_t bound_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<PieceBytes> bytes_;
  std::vector<std::exception_ptr> errors_;
  std::vector<char> ready_;
  std::size_t next_claim_ = 0;
  std::uint64_t in_flight_ = 0, max_in_flight_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace xpscale::detail
