#pragma once
// Which samples a rank reads in an epoch, and in which order: a pure
// function of (dataset digest, seed, epoch, world size) and the options.
//
// 1. The shards are permuted with Prng(mix_seed("shards", digest, seed,
//    epoch)) (unless shuffle_shards is off) and their samples laid end to
//    end: N global positions.
// 2. Rank r of W takes the span [floor(rN/W), floor((r+1)N/W)). Every rank
//    gets exactly n = ceil(N/W) samples: a short span is padded by
//    repeating its own first samples, flagged `repeat` (drop_last: n =
//    floor(N/W), the tail of longer spans is dropped). Contiguous spans
//    keep reads sequential: a rank touches at most two partial shards.
// 3. The span (in this order, repeats last) streams through a shuffle
//    buffer bounded in bytes: samples enter in order; while the buffered
//    bytes exceed the bound, one sample drawn by Prng(mix_seed("shuffle",
//    digest, seed, epoch, W, r)) leaves; at the end the rest leave in
//    random order. A bound of 0 keeps the stream order. The sizes come
//    from the shard indexes, so the order is known before any byte is read
//    and a resumed rank knows what was in its buffer without replaying.
//
// The group's sample sequence: step k of global batch B (b = B/W per rank)
// is rank 0's samples [kb, (k+1)b), then rank 1's, ... (the last step
// holds what is left, n mod b per rank). A run resumed on W' ranks after
// c samples (c a multiple of B, B a multiple of W') continues this same
// sequence: new rank r' takes the slice [r'B/W', (r'+1)B/W') of each
// step (in the last, short step: an equal split, padded with flagged
// repeats or cut under drop_last). The next epoch is planned for W'.
#include <cstdint>
#include <string>
#include <vector>

#include "xpscale/sharding/dataset.h"

namespace xpscale {

struct PlanOptions {
  std::uint64_t seed = 0;
  bool shuffle_shards = true;
  std::uint64_t shuffle_buffer_bytes = 0;
  bool drop_last = false;
};

struct SampleRef {
  std::uint32_t shard = 0;  // position in Dataset::shards
  std::uint64_t index = 0;  // sample within the shard
  bool repeat = false;

  bool operator==(const SampleRef&) const = default;
};

// What one rank reads (in this order) and emits (read positions, in
// emission order). Reading in `reads` order while emitting in `emits` order
// never holds more unread-but-needed bytes than the shuffle bound.
struct RankPlan {
  std::vector<SampleRef> reads;
  std::vector<std::uint32_t> emits;
};

// Samples each rank gets per epoch.
std::uint64_t samples_per_rank(std::uint64_t total, int world_size, bool drop_last);

// The epoch's sequence for `rank` of `world_size` from its position
// `start` (0 ..= samples_per_rank) on.
RankPlan plan_rank(const Dataset& dataset, const PlanOptions& options, std::uint64_t epoch,
                   int world_size, int rank, std::uint64_t start = 0);

// The rest of an epoch planned for `plan_world_size` ranks, after
// `consumed` samples of the group's sequence, for rank `rank` of
// `world_size` (see the header comment). Requires global_batch to be a
// multiple of both world sizes and consumed a multiple of global_batch (or
// the end of the epoch); throws ShardingError saying which does not hold.
RankPlan plan_regrouped(const Dataset& dataset, const PlanOptions& options, std::uint64_t epoch,
                        int plan_world_size, std::uint64_t global_batch, std::uint64_t consumed,
                        int world_size, int rank);

// The share of `plan` that worker `worker` of `workers` emits when the
// plan's emitted sequence is dealt out in blocks of `block` samples: blocks
// worker, worker + workers, ... in order, reading only what they emit.
// Workers that take turns a block at a time (a torch DataLoader's workers
// with batch size `block`) so give back exactly the plan's sequence.
// Throws ShardingError (from the constructor of a loader, too) unless
// 0 <= worker < workers and block >= 1.
RankPlan plan_worker(const RankPlan& plan, std::uint64_t block, int worker, int workers);
void check_worker_split(std::uint64_t block, int worker, int workers);

// The emitted sequence of a plan (tests and tools).
std::vector<SampleRef> emitted(const RankPlan& plan);

}  // namespace xpscale
