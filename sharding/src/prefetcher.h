#pragma once
// Background fetching of a rank's byte ranges, in the order they will be
// needed, by a few threads, with at most max_bytes_in_flight bytes fetched
// or being fetched and not yet taken by the consumer (a piece larger than
// the bound is fetched alone).
#include <condition_variable>
#include <cstdint>
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
  std::unique_ptr<char[]> data;
  std::size_t capacity = 0;
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
