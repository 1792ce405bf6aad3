#include "xpscale/sharding/epoch_plan.h"

#include <algorithm>
#include <map>
#include <numeric>

#include "xpscale/sharding/error.h"
#include "xpscale/sharding/prng.h"

namespace xpscale {

namespace {

std::uint64_t digest_bits(const std::string& digest) {
  return std::stoull(digest.substr(0, 16), nullptr, 16);
}

// The rank's span, in stream order, with its repeats at the end.
std::vector<SampleRef> rank_stream(const Dataset& dataset, const PlanOptions& options,
                                   std::uint64_t epoch, int world_size, int rank) {
  std::vector<std::uint32_t> order(dataset.shards.size());
  std::iota(order.begin(), order.end(), 0u);
  if (options.shuffle_shards) {
    const std::uint64_t parts[] = {digest_bits(dataset.digest), options.seed, epoch};
    Prng prng(mix_seed("shards", parts));
    prng.shuffle(std::span<std::uint32_t>(order));
  }
  const std::uint64_t total = dataset.samples;
  const auto w = static_cast<std::uint64_t>(world_size), r = static_cast<std::uint64_t>(rank);
  // r * total fits: totals above 2^40 samples are not a concern here.
  const std::uint64_t begin = r * total / w, end = (r + 1) * total / w;
  const std::uint64_t n = samples_per_rank(total, world_size, options.drop_last);

  // Global position -> shard and index, walking the permuted shards.
  auto at = [&](std::uint64_t position) {
    for (std::uint32_t s : order) {
      const std::uint64_t count = dataset.shards[s].index.samples();
      if (position < count) return SampleRef{s, position, false};
      position -= count;
    }
    return SampleRef{};
  };
  std::vector<SampleRef> stream;
  stream.reserve(static_cast<std::size_t>(n));
  const std::uint64_t own = std::min(end - begin, n);
  if (own > 0) {
    SampleRef ref = at(begin);
    std::size_t shard_pos =
        static_cast<std::size_t>(std::find(order.begin(), order.end(), ref.shard) - order.begin());
    for (std::uint64_t k = 0; k < own; ++k) {
      stream.push_back(ref);
      if (++ref.index == dataset.shards[ref.shard].index.samples() && k + 1 < own) {
        ref = SampleRef{order[++shard_pos], 0, false};
      }
    }
  }
  for (std::uint64_t k = own; k < n; ++k) {
    SampleRef ref = own > 0 ? stream[static_cast<std::size_t>(k % own)] : at(r % total);
    ref.repeat = true;
    stream.push_back(ref);
  }
  return stream;
}

// The shuffle buffer run over sample sizes: emission order as stream
// positions, and for each emission how many stream samples had entered.
struct Shuffled {
  std::vector<std::uint32_t> order;
  std::vector<std::uint32_t> entered;
};

Shuffled shuffle_stream(const Dataset& dataset, const std::vector<SampleRef>& stream,
                        const PlanOptions& options, std::uint64_t epoch, int world_size, int rank) {
  Shuffled out;
  out.order.reserve(stream.size());
  out.entered.reserve(stream.size());
  const std::uint64_t parts[] = {digest_bits(dataset.digest), options.seed, epoch,
                                 static_cast<std::uint64_t>(world_size),
                                 static_cast<std::uint64_t>(rank)};
  Prng prng(mix_seed("shuffle", parts));
  auto size_of = [&](std::uint32_t i) {
    const SampleRef& s = stream[i];
    const ShardIndex& index = dataset.shards[s.shard].index;
    return index.end(s.index) - index.begin(s.index);
  };
  std::vector<std::uint32_t> buffer;
  std::uint64_t bytes = 0;
  auto emit_one = [&](std::uint32_t entered) {
    const auto j = static_cast<std::size_t>(prng.below(buffer.size()));
    out.order.push_back(buffer[j]);
    out.entered.push_back(entered);
    bytes -= size_of(buffer[j]);
    buffer[j] = buffer.back();
    buffer.pop_back();
  };
  for (std::uint32_t i = 0; i < stream.size(); ++i) {
    buffer.push_back(i);
    bytes += size_of(i);
    while (bytes > options.shuffle_buffer_bytes && !buffer.empty()) emit_one(i + 1);
  }
  while (!buffer.empty()) emit_one(static_cast<std::uint32_t>(stream.size()));
  return out;
}

std::vector<SampleRef> full_sequence(const Dataset& dataset, const PlanOptions& options,
                                     std::uint64_t epoch, int world_size, int rank) {
  return emitted(plan_rank(dataset, options, epoch, world_size, rank, 0));
}

}  // namespace

std::uint64_t samples_per_rank(std::uint64_t total, int world_size, bool drop_last) {
  const auto w = static_cast<std::uint64_t>(world_size);
  return drop_last ? total / w : (total + w - 1) / w;
}

std::vector<SampleRef> emitted(const RankPlan& plan) {
  std::vector<SampleRef> out;
  out.reserve(plan.emits.size());
  for (std::uint32_t i : plan.emits) out.push_back(plan.reads[i]);
  return out;
}

RankPlan plan_rank(const Dataset& dataset, const PlanOptions& options, std::uint64_t epoch,
                   int world_size, int rank, std::uint64_t start) {
  const std::vector<SampleRef> stream = rank_stream(dataset, options, epoch, world_size, rank);
  if (start > stream.size())
    throw ShardingError("resume position " + std::to_string(start) + " is past the epoch's " +
                        std::to_string(stream.size()) + " samples per rank");
  const Shuffled shuffled = shuffle_stream(dataset, stream, options, epoch, world_size, rank);
  RankPlan plan;
  if (start == stream.size()) return plan;
  // What the buffer held when emission `start` was due: entered, not
  // yet emitted. Those are read first, then the stream from there on.
  const std::uint32_t entered = shuffled.entered[start];
  std::vector<bool> gone(entered, false);
  for (std::uint64_t t = 0; t < start; ++t) gone[shuffled.order[t]] = true;
  std::vector<std::uint32_t> read_of(stream.size(), 0);
  for (std::uint32_t i = 0; i < entered; ++i) {
    if (gone[i]) continue;
    read_of[i] = static_cast<std::uint32_t>(plan.reads.size());
    plan.reads.push_back(stream[i]);
  }
  for (std::uint32_t i = entered; i < stream.size(); ++i) {
    read_of[i] = static_cast<std::uint32_t>(plan.reads.size());
    plan.reads.push_back(stream[i]);
  }
  for (std::size_t t = start; t < shuffled.order.size(); ++t)
    plan.emits.push_back(read_of[shuffled.order[t]]);
  return plan;
}

RankPlan plan_regrouped(const Dataset& dataset, const PlanOptions& options, std::uint64_t epoch,
                        int plan_world_size, std::uint64_t global_batch, std::uint64_t consumed,
                        int world_size, int rank) {
  const auto w = static_cast<std::uint64_t>(plan_world_size);
  const auto w2 = static_cast<std::uint64_t>(world_size);
  const std::uint64_t n = samples_per_rank(dataset.samples, plan_world_size, options.drop_last);
  const std::uint64_t total = n * w;
  if (global_batch == 0 || global_batch % w != 0 || global_batch % w2 != 0)
    throw ShardingError("cannot resume an epoch planned for " + std::to_string(w) + " ranks on " +
                        std::to_string(w2) + ": the global batch (" + std::to_string(global_batch) +
                        ") must be a multiple of both");
  // At or past the end: the last step of a regrouped epoch is an equal
  // split padded with repeats, so the count it leaves may pass `total`.
  if (consumed >= total) return {};
  if (consumed % global_batch != 0)
    throw ShardingError(
        "cannot resume on " + std::to_string(w2) + " ranks after " + std::to_string(consumed) +
        " samples: not a multiple of the global batch (" + std::to_string(global_batch) + ")");
  const std::uint64_t b = global_batch / w, b2 = global_batch / w2;
  std::map<std::uint64_t, std::vector<SampleRef>> old;  // old rank -> its sequence
  auto ref_at = [&](std::uint64_t g) {
    const std::uint64_t k = g / global_batch, within = g % global_batch;
    const std::uint64_t step = std::min(b, n - k * b);  // per old rank in this step
    const std::uint64_t r = within / step, j = within % step;
    auto it = old.find(r);
    if (it == old.end())
      it = old.emplace(r,
                       full_sequence(dataset, options, epoch, plan_world_size, static_cast<int>(r)))
               .first;
    return it->second[static_cast<std::size_t>(k * b + j)];
  };
  RankPlan plan;
  auto add = [&](SampleRef ref) {
    plan.emits.push_back(static_cast<std::uint32_t>(plan.reads.size()));
    plan.reads.push_back(ref);
  };
  const auto r2 = static_cast<std::uint64_t>(rank);
  for (std::uint64_t start = consumed; start < total; start += global_batch) {
    const std::uint64_t size = std::min(global_batch, total - start);
    if (size == global_batch) {
      for (std::uint64_t g = start + r2 * b2; g < start + (r2 + 1) * b2; ++g) add(ref_at(g));
      continue;
    }
    const std::uint64_t lo = start + r2 * size / w2, hi = start + (r2 + 1) * size / w2;
    const std::uint64_t want = options.drop_last ? size / w2 : (size + w2 - 1) / w2;
    std::uint64_t got = 0;
    for (std::uint64_t g = lo; g < hi && got < want; ++g, ++got) add(ref_at(g));
    for (; got < want; ++got) {
      SampleRef ref = ref_at(lo < hi ? lo : start);
      ref.repeat = true;
      add(ref);
    }
  }
  return plan;
}

void check_worker_split(std::uint64_t block, int worker, int workers) {
  if (workers < 1 || worker < 0 || worker >= workers || block == 0)
    throw ShardingError("loader: worker " + std::to_string(worker) + " of " +
                        std::to_string(workers) + " with blocks of " + std::to_string(block) +
                        " samples is not a valid split");
}

RankPlan plan_worker(const RankPlan& plan, std::uint64_t block, int worker, int workers) {
  check_worker_split(block, worker, workers);
  const auto turn = static_cast<std::uint64_t>(workers);
  const auto mine = static_cast<std::uint64_t>(worker);
  std::vector<std::uint32_t> kept(plan.reads.size(), UINT32_MAX);  // old read -> new read
  for (std::size_t j = 0; j < plan.emits.size(); ++j)
    if ((j / block) % turn == mine) kept[plan.emits[j]] = 0;
  RankPlan out;
  for (std::size_t i = 0; i < plan.reads.size(); ++i) {
    if (kept[i] == UINT32_MAX) continue;
    kept[i] = static_cast<std::uint32_t>(out.reads.size());
    out.reads.push_back(plan.reads[i]);
  }
  for (std::size_t j = 0; j < plan.emits.size(); ++j)
    if ((j / block) % turn == mine) out.emits.push_back(kept[plan.emits[j]]);
  return out;
}

}  // namespace xpscale
