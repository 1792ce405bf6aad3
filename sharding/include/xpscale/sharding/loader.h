#pragma once
// ShardedLoader: the samples of one rank, epoch after epoch, streamed from
// a dataset's shards through its Sources (file, s3, gs, az, http), in the order of
// epoch_plan.h, with background prefetch, optional node-local caching and
// a small resumable state.
//
//   xpscale::ShardedLoader loader(xpscale::open_dataset({.manifest = url}),
//                                 {.seed = 7, .shuffle_buffer_bytes = 64 << 20},
//                                 {.rank = r, .size = w, .allgather = ...});
//   for (std::uint64_t epoch = loader.state().epoch; epoch < 10; ++epoch)
//     while (auto sample = loader.next()) use(sample->field("u8"));
//
// Every rank of the group gets exactly samples_per_epoch() samples per
// epoch; the loader checks at the start of each epoch, through
// GroupView::allgather, that the ranks agree on the dataset, the options
// and that count, and throws ShardingError naming the ranks that differ
// (instead of one rank hanging at the epoch's end).
//
// Not thread-safe: one consumer thread calls next(); the loader's own
// threads only fetch bytes.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "xpscale/sharding/dataset.h"
#include "xpscale/sharding/epoch_plan.h"
#include "xpscale/sharding/tar.h"

namespace xpscale {

class ShardCache;
class Source;

enum class OnError {
  kFail,  // a corrupt or unreadable sample throws ShardingError
  kSkip,  // it is replaced by a repeat of the last good sample (flagged)
};

struct LoaderOptions {
  std::uint64_t seed = 0;
  bool shuffle_shards = true;
  std::uint64_t shuffle_buffer_bytes = 0;  // 0: samples in shard order
  bool drop_last = false;                  // false: pad short ranks with repeats
  OnError on_error = OnError::kFail;
  // Samples per step over the whole group; resuming on another world size
  // needs it to be a multiple of both sizes. 0: the world size.
  std::uint64_t global_batch = 0;
  // Threads fetching ahead; 0: automatic, 1 when every shard is file://
  // (local reads are bound by memory copies, and more threads only fight
  // the consumer for cores: 2 or 4 threads read file:// shards 10-60%
  // slower than 1 on 2 cores), 4 otherwise (remote reads wait on latency).
  int prefetch_threads = 0;
  std::uint64_t max_bytes_in_flight = std::uint64_t{64} << 20;
  std::uint64_t read_bytes = std::uint64_t{4} << 20;  // target size of one ranged read
  // Once an epoch's last piece is in hand, start reading the next epoch
  // (at most shuffle_buffer_bytes + read_bytes of it until it begins), so
  // that its first samples do not wait. Off where the loader is not kept
  // from one epoch to the next (the Python package makes one per epoch).
  bool read_ahead_next_epoch = true;
  std::string cache_dir;                              // "" = no node-local cache
  std::uint64_t cache_max_bytes = 0;                  // 0 = unbounded
  // Several consumers of one rank's sequence (a DataLoader's worker
  // processes): this loader returns only the blocks of `worker_block`
  // samples that plan_worker() deals to `worker` of `num_workers`, and
  // reads only those. Its state() then does not say where the rank is: the
  // caller that interleaves the workers counts that.
  int worker = 0;
  int num_workers = 1;
  std::uint64_t worker_block = 1;
};

// The group the loader belongs to. allgather sends this rank's string and
// returns every rank's, in rank order (collective: every rank calls it at
// the same points). Leave it empty for a single rank.
struct GroupView {
  int rank = 0;
  int size = 1;
  std::function<std::vector<std::string>(const std::string&)> allgather = {};
};

// Where a loader is: small, the same on every rank, saved with a trial's
// checkpoint. samples_consumed counts the group's samples in this epoch.
struct LoaderState {
  std::uint64_t epoch = 0;
  std::uint64_t samples_consumed = 0;
  std::uint64_t seed = 0;
  std::string digest;  // of the dataset
  int world_size = 1;  // the epoch was planned for this many ranks
  std::uint64_t global_batch = 0;

  std::string to_json() const;
  // Throws ShardingError naming the field on malformed input.
  static LoaderState from_json(const std::string& text);
  bool operator==(const LoaderState&) const = default;
};

struct LoaderStats {
  std::uint64_t bytes = 0;    // shard bytes read
  std::uint64_t samples = 0;  // samples returned
  std::uint64_t repeats = 0;  // of which flagged repeats
  std::uint64_t skipped = 0;  // samples replaced under on_error: skip
  double wait_s = 0;          // time next() waited for bytes
  // Where the waits were: how many next() calls blocked, and how much of
  // wait_s went to each epoch's first piece (the prefetch had no head start).
  std::uint64_t waits = 0;
  double first_wait_s = 0;
  // Epochs whose reads began before the previous epoch's last sample
  // (LoaderOptions::read_ahead_next_epoch).
  std::uint64_t epochs_read_ahead = 0;
  double elapsed_s = 0;       // from the first next() to the stats() call
  std::uint64_t max_bytes_in_flight = 0;

  double bytes_per_s() const { return elapsed_s > 0 ? bytes / elapsed_s : 0; }
  double samples_per_s() const { return elapsed_s > 0 ? samples / elapsed_s : 0; }
  // The share of the consumer's time spent waiting for data.
  double stall_fraction() const { return elapsed_s > 0 ? wait_s / elapsed_s : 0; }
};

class ShardedLoader {
 public:
  ShardedLoader(Dataset dataset, LoaderOptions options, GroupView group = {});
  ~ShardedLoader();
  ShardedLoader(const ShardedLoader&) = delete;
  ShardedLoader& operator=(const ShardedLoader&) = delete;

  // The next sample of the current epoch, or nullopt when this rank's
  // share is done; the state then moves to the next epoch, which the next
  // call starts. Throws ShardingError (on_error: fail) naming the shard,
  // the entry and the byte offset of a corrupt sample.
  std::optional<Sample> next();

  // Where the loader is; restore() makes it continue from there exactly as
  // the loader that saved it would have (see epoch_plan.h for another
  // world size). Throws ShardingError if the state is for another dataset
  // or seed, or cannot be continued on this world size.
  LoaderState state() const;
  void restore(const LoaderState& state);

  std::uint64_t samples_per_epoch() const;  // per rank
  // Samples this rank (all its workers together) still gets in the
  // current epoch, from the state (or the restored one) on.
  std::uint64_t remaining() const;
  const Dataset& dataset() const { return dataset_; }
  LoaderStats stats() const;

 private:
  class Epoch;
  class BufferPool;
  void start_epoch();
  void start_next_epoch_early();  // the next epoch's reads, as this one's end nears
  // The rest of the epoch for this rank (all its workers), from `state`.
  RankPlan rank_plan(const LoaderState& state) const;
  // This worker's share of the plan from `state`, reading at most `bound`
  // bytes ahead.
  std::unique_ptr<Epoch> make_epoch(const LoaderState& state, std::uint64_t bound);
  PlanOptions plan_options() const;

  Dataset dataset_;
  LoaderOptions options_;
  GroupView group_;
  LoaderState state_;
  std::vector<std::shared_ptr<Source>> sources_;  // one per shard
  std::unique_ptr<ShardCache> cache_;
  std::shared_ptr<BufferPool> pool_;  // read buffers, for every epoch
  std::unique_ptr<Epoch> epoch_;
  std::unique_ptr<Epoch> next_epoch_;  // made ahead of time, reading already
  std::uint64_t epoch_base_ = 0;  // samples_consumed when the epoch (rest) started
  LoaderStats stats_;
  std::uint64_t max_in_flight_ = 0;
  bool started_ = false;
  std::chrono::steady_clock::time_point first_call_;
};

}  // namespace xpscale
