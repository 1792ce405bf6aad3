#include "xpscale/sharding/loader.h"

#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "prefetcher.h"
#include "xpscale/sharding/error.h"
#include "xpscale/sharding/shard_cache.h"

namespace xpscale {

namespace {

using Clock = std::chrono::steady_clock;

// Consecutive samples of one shard, read with one ranged read of about
// read_bytes (at least one sample).
std::vector<detail::Piece> make_pieces(const Dataset& dataset, const RankPlan& plan,
                                       std::uint64_t read_bytes) {
  std::vector<detail::Piece> pieces;
  for (std::uint32_t i = 0; i < plan.reads.size(); ++i) {
    const SampleRef& ref = plan.reads[i];
    const ShardIndex& index = dataset.shards[ref.shard].index;
    const std::uint64_t begin = index.begin(ref.index), end = index.end(ref.index);
    if (!pieces.empty()) {
      detail::Piece& last = pieces.back();
      const SampleRef& prev = plan.reads[i - 1];
      if (prev.shard == ref.shard && prev.index + 1 == ref.index &&
          last.offset + last.length == begin && last.length + (end - begin) <= read_bytes) {
        last.length += end - begin;
        ++last.count;
        continue;
      }
    }
    pieces.push_back({ref.shard, begin, end - begin, i, 1});
  }
  return pieces;
}

std::string check_agreement(const GroupView& group, const std::string& mine) {
  if (!group.allgather || group.size <= 1) return {};
  const std::vector<std::string> all = group.allgather(mine);
  std::string differ;
  for (std::size_t r = 0; r < all.size(); ++r)
    if (all[r] != all[0])
      differ += (differ.empty() ? "" : "; ") + ("rank " + std::to_string(r) + ": " + all[r]);
  if (differ.empty()) return {};
  return "the ranks of the group disagree about the data: rank 0: " + all[0] + "; " + differ;
}

}  // namespace

// Read buffers, reused and never zero-filled: a fresh multi-MiB buffer per
// read paid a page fault per 4 KiB on first touch, which cost more than
// the copy into it. A buffer comes back when the last sample pointing into
// it is gone; at most `keep` idle ones are kept. One pool serves every
// epoch of a loader: a pool per epoch started each epoch on fresh memory,
// and the first touch of fresh pages (dearer still in a VM, where the
// host backs them) was most of the wait for an epoch's first piece: 4 MiB
// took 3-13 ms to read from the page cache into new buffers against 0.3-
// 0.7 ms into used ones (bench/loader's trainer, this machine).
class ShardedLoader::BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  explicit BufferPool(std::size_t keep) : keep_(keep) {}

  detail::PieceBytes get(std::size_t size) {
    {
      const std::lock_guard lock(mutex_);
      for (auto it = free_.begin(); it != free_.end(); ++it) {
        if (it->capacity < size) continue;
        detail::PieceBytes b = std::move(*it);
        free_.erase(it);
        return b;
      }
    }
    return detail::PieceBytes::allocate(size);
  }

  std::shared_ptr<const void> share(detail::PieceBytes bytes) {
    char* data = bytes.data.release();
    return std::shared_ptr<const void>(
        data, [pool = shared_from_this(), capacity = bytes.capacity](const void* p) {
          pool->put({std::unique_ptr<char, detail::PieceBytes::Free>(
                         static_cast<char*>(const_cast<void*>(p))),
                     capacity});
        });
  }

 private:
  void put(detail::PieceBytes b) {
    const std::lock_guard lock(mutex_);
    if (free_.size() < keep_) free_.push_back(std::move(b));
  }

  std::size_t keep_;
  std::mutex mutex_;
  std::vector<detail::PieceBytes> free_;
};

// One epoch (or its rest) of this rank: the plan, the prefetcher and the
// samples read but not yet returned.
class ShardedLoader::Epoch {
 public:
  // `state` is where the plan starts (the loader's state at its first
  // sample); the epoch may be made ahead of time, before the loader is there.
  // rank_samples: the rank's samples in `plan` before a worker's share was
  // taken (the figure the ranks agree on).
  // bound: the bytes in flight it may read before read_fully().
  Epoch(ShardedLoader& loader, RankPlan plan, LoaderState state, std::uint64_t rank_samples,
        std::uint64_t bound)
      : loader_(loader),
        state_(std::move(state)),
        rank_samples_(rank_samples),
        plan_(std::move(plan)),
        pool_(loader.pool_),
        prefetcher_(
            make_pieces(loader.dataset_, plan_, loader.options_.read_bytes),
            [this](const detail::Piece& p) { return fetch(p); }, loader.options_.prefetch_threads,
            bound) {}

  std::size_t size() const { return plan_.emits.size(); }
  const LoaderState& state() const { return state_; }
  std::uint64_t rank_samples() const { return rank_samples_; }
  void read_fully() { prefetcher_.set_bound(loader_.options_.max_bytes_in_flight); }
  // Every piece has been handed to the consumer: the prefetch is idle.
  bool all_taken() const { return next_piece_ == prefetcher_.pieces().size(); }
  std::size_t position() const { return emitted_; }
  std::uint64_t max_in_flight() const { return prefetcher_.max_in_flight(); }

  std::optional<Sample> next(LoaderStats& stats) {
    if (emitted_ == plan_.emits.size()) return std::nullopt;
    const std::uint32_t read = plan_.emits[emitted_];
    while (parsed_ <= read) parse_piece(stats);
    Sample sample;
    auto it = ready_.find(read);
    const SampleRef& ref = plan_.reads[read];
    if (it == ready_.end()) {  // skipped under on_error: skip
      if (!last_good_)
        throw ShardingError("on_error: skip: " + failure_ +
                            " (and no good sample came before it to repeat)");
      sample = *last_good_;
      sample.repeat = true;
      ++stats.skipped;
    } else {
      sample = std::move(it->second);
      ready_.erase(it);
      sample.shard = ref.shard;
      sample.index = ref.index;
      sample.repeat = ref.repeat;
      if (loader_.options_.on_error == OnError::kSkip) last_good_ = sample;
    }
    ++emitted_;
    ++stats.samples;
    if (sample.repeat) ++stats.repeats;
    return sample;
  }

 private:
  detail::PieceBytes fetch(const detail::Piece& piece) {
    const DatasetShard& shard = loader_.dataset_.shards[piece.shard];
    detail::PieceBytes bytes = pool_->get(static_cast<std::size_t>(piece.length));
    if (loader_.cache_) {
      auto lease =
          loader_.cache_->acquire(*loader_.sources_[piece.shard], shard.object, shard.sha256);
      std::uint64_t done = 0;
      lease->read(piece.offset, piece.length, [&](const char* data, std::size_t size) {
        std::memcpy(bytes.data.get() + done, data, size);
        done += size;
        return true;
      });
    } else {
      loader_.sources_[piece.shard]->read_into(shard.object, piece.offset, piece.length,
                                               bytes.data.get());
    }
    return bytes;
  }

  // Takes the next piece and parses it; under on_error: skip a piece that
  // fails is parsed again sample by sample, so that a corrupt sample costs
  // only itself.
  void parse_piece(LoaderStats& stats) {
    const detail::Piece& piece = prefetcher_.pieces()[next_piece_];
    std::shared_ptr<const void> bytes;
    double waited = 0;
    const auto count_wait = [&] {
      if (waited <= 0) return;
      stats.wait_s += waited;
      ++stats.waits;
      if (next_piece_ == 1) stats.first_wait_s += waited;
    };
    try {
      bytes = pool_->share(prefetcher_.take(next_piece_++, waited));
      count_wait();
      stats.bytes += piece.length;
    } catch (const std::exception& e) {
      count_wait();
      if (loader_.options_.on_error == OnError::kFail) throw;
      failure_ = e.what();
      parsed_ += piece.count;
      return;
    }
    try {
      parse_range(bytes, piece, piece.first_read, piece.count);
    } catch (const ShardingError& e) {
      if (loader_.options_.on_error == OnError::kFail) throw;
      for (std::uint32_t k = 0; k < piece.count; ++k) {
        ready_.erase(piece.first_read + k);
        try {
          parse_range(bytes, piece, piece.first_read + k, 1);
        } catch (const ShardingError& one) {
          ready_.erase(piece.first_read + k);
          failure_ = one.what();
        }
      }
    }
    parsed_ += piece.count;
  }

  // Parses reads [first, first + count) of `piece` (consecutive samples of
  // one shard), checking that they start where the index says.
  void parse_range(const std::shared_ptr<const void>& buffer, const detail::Piece& piece,
                   std::uint32_t first, std::uint32_t count) {
    const DatasetShard& shard = loader_.dataset_.shards[piece.shard];
    const std::uint64_t begin = shard.index.begin(plan_.reads[first].index);
    const std::uint64_t end = shard.index.end(plan_.reads[first + count - 1].index);
    std::uint32_t found = 0;
    const bool own = loader_.options_.shuffle_buffer_bytes > 0;
    const std::string_view all(static_cast<const char*>(buffer.get()),
                               static_cast<std::size_t>(piece.length));
    parse_samples(buffer,
                  all.substr(static_cast<std::size_t>(begin - piece.offset),
                             static_cast<std::size_t>(end - begin)),
                  shard.object.url, begin, [&](Sample&& s, std::uint64_t start) {
                    const std::uint32_t read = first + found++;
                    const std::uint64_t expected =
                        found <= count ? shard.index.begin(plan_.reads[read].index) : end;
                    if (start != expected)
                      throw ShardingError(shard.object.url +
                                          ": the index puts a sample at byte offset " +
                                          std::to_string(expected) + " but one starts at " +
                                          std::to_string(start) + " (stale index?)");
                    // Samples held by a shuffle buffer get their own bytes, so
                    // that they do not pin whole read buffers.
                    if (own) s.own();
                    ready_.emplace(read, std::move(s));
                  });
    if (found != count)
      throw ShardingError(shard.object.url + ": the index puts " + std::to_string(count) +
                          " samples in bytes [" + std::to_string(begin) + ", " +
                          std::to_string(end) + ") but they hold " + std::to_string(found) +
                          " (stale index?)");
  }

  ShardedLoader& loader_;
  LoaderState state_;
  std::uint64_t rank_samples_;
  RankPlan plan_;
  std::shared_ptr<BufferPool> pool_;  // before the prefetcher, whose threads use it
  detail::Prefetcher prefetcher_;
  std::unordered_map<std::uint32_t, Sample> ready_;
  std::size_t next_piece_ = 0;
  std::uint32_t parsed_ = 0;  // reads parsed (or failed) so far
  std::size_t emitted_ = 0;
  std::optional<Sample> last_good_;
  std::string failure_;
};

ShardedLoader::ShardedLoader(Dataset dataset, LoaderOptions options, GroupView group)
    : dataset_(std::move(dataset)), options_(std::move(options)), group_(std::move(group)) {
  if (group_.size < 1 || group_.rank < 0 || group_.rank >= group_.size)
    throw ShardingError("loader: rank " + std::to_string(group_.rank) + " of " +
                        std::to_string(group_.size) + " is not a valid place in a group");
  if (options_.global_batch == 0) options_.global_batch = static_cast<std::uint64_t>(group_.size);
  if (options_.global_batch % static_cast<std::uint64_t>(group_.size) != 0)
    throw ShardingError("loader: the global batch (" + std::to_string(options_.global_batch) +
                        ") is not a multiple of the group size (" + std::to_string(group_.size) +
                        ")");
  check_worker_split(options_.worker_block, options_.worker, options_.num_workers);
  state_.seed = options_.seed;
  state_.digest = dataset_.digest;
  state_.world_size = group_.size;
  state_.global_batch = options_.global_batch;
  bool all_local = true;
  for (const DatasetShard& shard : dataset_.shards) {
    const Url url = parse_url(shard.object.url);
    all_local = all_local && url.scheme == "file";
    sources_.push_back(open_source(url));
  }
  if (options_.prefetch_threads <= 0) options_.prefetch_threads = all_local ? 1 : 4;
  pool_ = std::make_shared<BufferPool>(
      static_cast<std::size_t>(options_.max_bytes_in_flight /
                               std::max<std::uint64_t>(options_.read_bytes, 1)) +
      static_cast<std::size_t>(options_.prefetch_threads) + 2);
  if (!options_.cache_dir.empty())
    cache_ = std::make_unique<ShardCache>(options_.cache_dir, options_.cache_max_bytes);
}

ShardedLoader::~ShardedLoader() = default;

PlanOptions ShardedLoader::plan_options() const {
  return PlanOptions{options_.seed, options_.shuffle_shards, options_.shuffle_buffer_bytes,
                     options_.drop_last};
}

RankPlan ShardedLoader::rank_plan(const LoaderState& state) const {
  const int w = group_.size;
  const std::uint64_t consumed = state.samples_consumed;
  if (state.world_size == w && consumed % static_cast<std::uint64_t>(w) == 0)
    return plan_rank(dataset_, plan_options(), state.epoch, w, group_.rank,
                     consumed / static_cast<std::uint64_t>(w));
  return plan_regrouped(dataset_, plan_options(), state.epoch, state.world_size,
                        state.global_batch, consumed, w, group_.rank);
}

std::unique_ptr<ShardedLoader::Epoch> ShardedLoader::make_epoch(const LoaderState& state,
                                                                std::uint64_t bound) {
  RankPlan plan = rank_plan(state);
  const std::uint64_t rank_samples = plan.emits.size();
  if (options_.num_workers > 1)
    plan = plan_worker(plan, options_.worker_block, options_.worker, options_.num_workers);
  return std::make_unique<Epoch>(*this, std::move(plan), state, rank_samples, bound);
}

std::uint64_t ShardedLoader::remaining() const {
  if (!epoch_) return rank_plan(state_).emits.size();
  if (options_.num_workers == 1) return epoch_->size() - epoch_->position();
  throw ShardingError("loader: a worker's loader does not know where its rank is mid-epoch");
}

void ShardedLoader::start_epoch() {
  // The epoch made ahead of time (start_next_epoch_early) when it starts
  // where the loader is; else one made now.
  std::unique_ptr<Epoch> epoch = std::move(next_epoch_);
  if (epoch && epoch->state() == state_)
    epoch->read_fully();
  else
    epoch = make_epoch(state_, options_.max_bytes_in_flight);
  const std::string mine =
      "dataset " + dataset_.digest.substr(0, 16) + ", seed " + std::to_string(options_.seed) +
      ", epoch " + std::to_string(state_.epoch) + " from sample " +
      std::to_string(state_.samples_consumed) + ", " + std::to_string(epoch->rank_samples()) +
      " samples per rank";
  if (const std::string problem = check_agreement(group_, mine); !problem.empty())
    throw ShardingError(problem);
  epoch_base_ = state_.samples_consumed;
  epoch_ = std::move(epoch);
}

void ShardedLoader::start_next_epoch_early() {
  LoaderState next = state_;
  ++next.epoch;
  next.samples_consumed = 0;
  next.world_size = group_.size;
  next.global_batch = options_.global_batch;
  // Enough to fill the shuffle buffer (pieces are at most read_bytes, or
  // one sample), not the whole bound: reads that nobody takes when
  // training stops after this epoch.
  next_epoch_ = make_epoch(next, std::min(options_.max_bytes_in_flight,
                                          options_.shuffle_buffer_bytes + options_.read_bytes));
  ++stats_.epochs_read_ahead;
}

std::optional<Sample> ShardedLoader::next() {
  if (!started_) {
    started_ = true;
    first_call_ = Clock::now();
  }
  if (!epoch_) start_epoch();
  std::optional<Sample> sample = epoch_->next(stats_);
  if (sample) {
    state_.samples_consumed =
        epoch_base_ + epoch_->position() * static_cast<std::uint64_t>(group_.size);
    // Once the epoch's last piece is in hand, the samples left (a shuffle
    // buffer's worth, or the piece's) are the head start of the next
    // epoch's reads: without it every epoch began with a wait for its
    // first piece.
    if (options_.read_ahead_next_epoch && !next_epoch_ && epoch_->all_taken() &&
        epoch_->position() < epoch_->size())
      start_next_epoch_early();
  } else {
    max_in_flight_ = std::max(max_in_flight_, epoch_->max_in_flight());
    epoch_.reset();
    ++state_.epoch;
    state_.samples_consumed = 0;
    state_.world_size = group_.size;
    state_.global_batch = options_.global_batch;
  }
  return sample;
}

LoaderState ShardedLoader::state() const { return state_; }

void ShardedLoader::restore(const LoaderState& state) {
  if (state.digest != dataset_.digest)
    throw ShardingError("loader state is for another dataset (digest " + state.digest +
                        ", this one is " + dataset_.digest + ")");
  if (state.seed != options_.seed)
    throw ShardingError("loader state is for seed " + std::to_string(state.seed) +
                        ", this loader has seed " + std::to_string(options_.seed));
  if (state.world_size < 1) throw ShardingError("loader state: world_size must be >= 1");
  epoch_.reset();
  next_epoch_.reset();
  state_ = state;
}

std::uint64_t ShardedLoader::samples_per_epoch() const {
  return samples_per_rank(dataset_.samples, group_.size, options_.drop_last);
}

LoaderStats ShardedLoader::stats() const {
  LoaderStats s = stats_;
  // Timed here rather than in next(): two clock reads per sample were a
  // measurable share of the cost of small samples.
  if (started_) s.elapsed_s = std::chrono::duration<double>(Clock::now() - first_call_).count();
  s.max_bytes_in_flight = std::max({max_in_flight_, epoch_ ? epoch_->max_in_flight() : 0,
                                    next_epoch_ ? next_epoch_->max_in_flight() : 0});
  return s;
}

std::string LoaderState::to_json() const {
  nlohmann::ordered_json j;
  j["epoch"] = epoch;
  j["samples_consumed"] = samples_consumed;
  j["seed"] = seed;
  j["digest"] = digest;
  j["world_size"] = world_size;
  j["global_batch"] = global_batch;
  return j.dump();
}

LoaderState LoaderState::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw ShardingError(std::string("loader state: not JSON: ") + e.what());
  }
  LoaderState s;
  auto number = [&](const char* key) {
    if (!j.is_object() || !j.contains(key) || !j[key].is_number_unsigned())
      throw ShardingError(std::string("loader state: '") + key +
                          "' must be a non-negative integer");
    return j[key].get<std::uint64_t>();
  };
  s.epoch = number("epoch");
  s.samples_consumed = number("samples_consumed");
  s.seed = number("seed");
  s.world_size = static_cast<int>(number("world_size"));
  s.global_batch = number("global_batch");
  if (!j.contains("digest") || !j["digest"].is_string())
    throw ShardingError("loader state: 'digest' must be a string");
  s.digest = j["digest"].get<std::string>();
  return s;
}

}  // namespace xpscale
