// Partitioning, shuffle, resume, on_error and prefetch of the sharded
// loader, on file:// shards written by the real shard writer.
#include "xpscale/sharding/loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "sharding_test_util.h"
#include "xpscale/sharding/error.h"

namespace xpscale {
namespace {

using test::sample_number;

struct Seen {
  std::uint64_t number;
  bool repeat;
  bool operator==(const Seen&) const = default;
};

std::vector<Seen> drain(ShardedLoader& loader, std::size_t limit = SIZE_MAX) {
  std::vector<Seen> out;
  while (out.size() < limit) {
    auto s = loader.next();
    if (!s) break;
    out.push_back({sample_number(*s), s->repeat});
  }
  return out;
}

LoaderOptions shuffled(std::uint64_t seed = 7) {
  LoaderOptions o;
  o.seed = seed;
  o.shuffle_buffer_bytes = 8 << 10;
  o.read_bytes = 16 << 10;
  o.prefetch_threads = 2;
  return o;
}

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override { manifest_ = test::make_dataset(dir_.path(), 103, 5); }
  Dataset dataset() const { return open_dataset({.manifest = manifest_}); }

  test::TempDir dir_;
  std::string manifest_;
};

TEST_F(LoaderTest, DatasetFromManifestPatternAndPrefixAgree) {
  const Dataset a = dataset();
  const Dataset b =
      open_dataset({.pattern = "file://" + dir_.str() + "/data-{000000..000004}.tar"});
  const Dataset c = open_dataset({.prefix = dir_.str() + "/"});
  EXPECT_EQ(a.samples, 103u);
  EXPECT_EQ(a.digest, b.digest);
  EXPECT_EQ(a.digest, c.digest);
  EXPECT_EQ(c.shards.size(), 5u);
}

TEST_F(LoaderTest, ShardsWithoutSidecarsAreScanned) {
  const Dataset with_sidecars = dataset();
  std::filesystem::remove(dir_.path() / "data-000002.tar.idx");
  const Dataset scanned =
      open_dataset({.pattern = "file://" + dir_.str() + "/data-{000000..000004}.tar"});
  EXPECT_EQ(scanned.digest, with_sidecars.digest);
  EXPECT_EQ(scanned.shards[2].index.offsets, with_sidecars.shards[2].index.offsets);
  // A manifest that names the sidecar needs it.
  EXPECT_THROW(dataset(), ShardingError);
}

TEST_F(LoaderTest, TwoRunsGiveTheSameOrderAndAnotherSeedAnother) {
  ShardedLoader a(dataset(), shuffled()), b(dataset(), shuffled()), c(dataset(), shuffled(8));
  const auto first = drain(a);
  EXPECT_EQ(first, drain(b));
  EXPECT_NE(first, drain(c));
  // The next epoch is ordered differently but holds the same samples.
  const auto second = drain(a);
  EXPECT_NE(first, second);
  auto numbers = [](std::vector<Seen> v) {
    std::vector<std::uint64_t> n;
    for (auto& s : v) n.push_back(s.number);
    std::sort(n.begin(), n.end());
    return n;
  };
  EXPECT_EQ(numbers(first), numbers(second));
}

TEST_F(LoaderTest, EveryRankGetsTheSameCountAndEverySampleComesOnce) {
  for (bool drop_last : {false, true}) {
    for (int w : {2, 3, 4, 7}) {
      std::map<std::uint64_t, int> real;  // sample -> times seen unflagged
      std::size_t count = 0;
      for (int r = 0; r < w; ++r) {
        LoaderOptions o = shuffled();
        o.drop_last = drop_last;
        ShardedLoader loader(dataset(), o, {.rank = r, .size = w});
        const auto seen = drain(loader);
        if (r == 0) count = seen.size();
        EXPECT_EQ(seen.size(), count) << "rank " << r << " of " << w;
        EXPECT_EQ(seen.size(), loader.samples_per_epoch());
        for (const Seen& s : seen)
          if (!s.repeat) ++real[s.number];
      }
      EXPECT_EQ(count, drop_last ? 103 / w : (103 + w - 1) / w) << w;
      if (!drop_last) {
        EXPECT_EQ(real.size(), 103u) << w;
      }
      for (const auto& [n, times] : real)
        EXPECT_EQ(times, 1) << "sample " << n << ", " << w << " ranks";
    }
  }
}

TEST_F(LoaderTest, ResumedMidEpochOnTheSameWorldSizeContinuesTheSequence) {
  for (int r = 0; r < 3; ++r) {
    ShardedLoader whole(dataset(), shuffled(), {.rank = r, .size = 3});
    auto expected = drain(whole);
    const auto next_epoch = drain(whole);
    expected.insert(expected.end(), next_epoch.begin(), next_epoch.end());

    ShardedLoader first(dataset(), shuffled(), {.rank = r, .size = 3});
    auto got = drain(first, 13);
    const std::string saved = first.state().to_json();
    ShardedLoader resumed(dataset(), shuffled(), {.rank = r, .size = 3});
    resumed.restore(LoaderState::from_json(saved));
    const auto rest = drain(resumed);
    got.insert(got.end(), rest.begin(), rest.end());
    const auto second = drain(resumed);
    got.insert(got.end(), second.begin(), second.end());
    EXPECT_EQ(got, expected) << "rank " << r;
  }
}

TEST_F(LoaderTest, WorkersTakingTurnsByBlockGiveBackTheRanksSequence) {
  for (const std::uint64_t block : {1u, 4u, 7u}) {
    for (const int workers : {2, 3}) {
      ShardedLoader whole(dataset(), shuffled(), {.rank = 1, .size = 2});
      const auto expected = drain(whole);
      std::vector<std::vector<Seen>> per_worker;
      for (int w = 0; w < workers; ++w) {
        LoaderOptions o = shuffled();
        o.worker = w;
        o.num_workers = workers;
        o.worker_block = block;
        ShardedLoader part(dataset(), o, {.rank = 1, .size = 2});
        per_worker.push_back(drain(part));
      }
      // Deal the workers' blocks back in turn, as a DataLoader does.
      std::vector<Seen> got;
      std::vector<std::size_t> at(per_worker.size(), 0);
      for (std::size_t turn = 0; got.size() < expected.size() && turn < expected.size(); ++turn) {
        auto& mine = per_worker[turn % per_worker.size()];
        std::size_t& i = at[turn % per_worker.size()];
        for (std::uint64_t k = 0; k < block && i < mine.size(); ++k) got.push_back(mine[i++]);
      }
      for (std::size_t w = 0; w < per_worker.size(); ++w)
        EXPECT_EQ(at[w], per_worker[w].size()) << "worker " << w << " holds samples not dealt";
      EXPECT_EQ(got, expected) << workers << " workers, blocks of " << block;
    }
  }
  LoaderOptions bad = shuffled();
  bad.worker = 2;
  bad.num_workers = 2;
  EXPECT_THROW(ShardedLoader(dataset(), bad), ShardingError);
}

// The group's sequence: per step, rank 0's b samples, then rank 1's, ...
std::vector<Seen> group_sequence(std::vector<std::vector<Seen>> per_rank, std::size_t b) {
  std::vector<Seen> out;
  for (std::size_t k = 0; k * b < per_rank[0].size(); ++k)
    for (auto& rank : per_rank)
      for (std::size_t j = k * b; j < std::min(rank.size(), (k + 1) * b); ++j)
        out.push_back(rank[j]);
  return out;
}

TEST_F(LoaderTest, ResumedOnAnotherWorldSizeContinuesTheGroupSequence) {
  const std::uint64_t batch = 12;  // a multiple of 2, 3, 4, 6
  for (int w2 : {2, 3, 6}) {
    LoaderOptions o = shuffled();
    o.global_batch = batch;
    std::vector<std::vector<Seen>> whole(4), before(4);
    LoaderState saved;
    for (int r = 0; r < 4; ++r) {
      ShardedLoader a(dataset(), o, {.rank = r, .size = 4});
      whole[r] = drain(a);
      ShardedLoader b(dataset(), o, {.rank = r, .size = 4});
      before[r] = drain(b, 2 * batch / 4);  // two steps
      saved = b.state();
    }
    EXPECT_EQ(saved.samples_consumed, 2 * batch);
    std::vector<std::vector<Seen>> after(w2);
    for (int r = 0; r < w2; ++r) {
      ShardedLoader c(dataset(), o, {.rank = r, .size = w2});
      c.restore(saved);
      after[r] = drain(c);
      EXPECT_EQ(after[r].size(), after[0].size());
    }
    auto got = group_sequence(before, batch / 4);
    const auto rest = group_sequence(after, batch / w2);
    got.insert(got.end(), rest.begin(), rest.end());
    const auto expected = group_sequence(whole, batch / 4);
    // Equal per step; the last, short step may split differently.
    ASSERT_GE(got.size(), expected.size() - expected.size() % batch);
    const std::size_t full = expected.size() - expected.size() % batch;
    EXPECT_TRUE(std::equal(expected.begin(), expected.begin() + full, got.begin()))
        << w2 << " ranks";
    std::multiset<std::uint64_t> tail_expected, tail_got;
    for (std::size_t i = full; i < expected.size(); ++i) tail_expected.insert(expected[i].number);
    for (std::size_t i = full; i < got.size(); ++i)
      if (!got[i].repeat) tail_got.insert(got[i].number);
    for (auto n : tail_got) EXPECT_TRUE(tail_expected.count(n)) << n;
  }
}

TEST_F(LoaderTest, ResumeOnAnotherWorldSizeNeedsTheGlobalBatchToDivide) {
  LoaderOptions o = shuffled();
  o.global_batch = 8;
  ShardedLoader a(dataset(), o, {.rank = 0, .size = 4});
  drain(a, 1);  // 4 of the group's samples: half a step
  ShardedLoader b(dataset(), o, {.rank = 0, .size = 2});
  b.restore(a.state());
  try {
    b.next();
    FAIL() << "expected an error";
  } catch (const ShardingError& e) {
    EXPECT_STREQ(
        e.what(),
        "cannot resume on 2 ranks after 4 samples: not a multiple of the global batch (8)");
  }
  drain(a, 1);  // a whole step: fine on 2 ranks, not on 3
  b.restore(a.state());
  EXPECT_NO_THROW(b.next());
  LoaderOptions o3 = shuffled();
  o3.global_batch = 9;
  ShardedLoader c(dataset(), o3, {.rank = 0, .size = 3});
  c.restore(a.state());
  try {
    c.next();
    FAIL() << "expected an error";
  } catch (const ShardingError& e) {
    EXPECT_STREQ(e.what(),
                 "cannot resume an epoch planned for 4 ranks on 3: the global batch (8) must be a "
                 "multiple of both");
  }
}

TEST_F(LoaderTest, ARegroupedEpochsEndMayCountPastTheTotalAndStillResumes) {
  // 103 samples planned for 2 ranks (52 each, 104 in the group's count),
  // resumed on 4 with batches of 4: the last, short step is padded to an
  // equal split, so the count at its end passes the total. A state saved
  // there is the end of the epoch, not an error.
  LoaderOptions o = shuffled();
  o.global_batch = 4;
  ShardedLoader two(dataset(), o, {.rank = 0, .size = 2});
  drain(two, 50);  // 100 of the group's samples: 25 steps
  ShardedLoader four(dataset(), o, {.rank = 0, .size = 4});
  four.restore(two.state());
  drain(four);  // the rest of epoch 0 on 4 ranks
  LoaderState end = two.state();
  end.samples_consumed = 108;  // where a 4-rank group counts itself after the last step
  ShardedLoader again(dataset(), o, {.rank = 0, .size = 4});
  again.restore(end);
  EXPECT_EQ(again.remaining(), 0u);
  EXPECT_FALSE(again.next());  // the epoch is over
  EXPECT_EQ(again.state().epoch, 1u);
  EXPECT_TRUE(again.next());
}

TEST_F(LoaderTest, RestoringAnotherDatasetsStateIsAnError) {
  ShardedLoader a(dataset(), shuffled());
  LoaderState s = a.state();
  s.digest = "00" + s.digest.substr(2);
  EXPECT_THROW(a.restore(s), ShardingError);
  EXPECT_EQ(LoaderState::from_json(a.state().to_json()), a.state());
  EXPECT_THROW(LoaderState::from_json("{\"epoch\": -1}"), ShardingError);
}

void corrupt_byte(const std::filesystem::path& file, std::uint64_t offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put('#');
}

TEST_F(LoaderTest, CorruptSampleFailsOrIsSkippedKeepingCountsEqual) {
  const Dataset d = dataset();
  // The name of sample 3's first header in shard 1.
  const std::uint64_t at = d.shards[1].index.begin(3);
  corrupt_byte(dir_.path() / "data-000001.tar", at);
  LoaderOptions o;  // no shuffle: stream order
  o.shuffle_shards = false;
  const std::string url = "file://" + dir_.str() + "/data-000001.tar";
  {
    ShardedLoader loader(open_dataset({.manifest = manifest_}), o);
    try {
      drain(loader);
      FAIL() << "expected an error";
    } catch (const ShardingError& e) {
      const std::string prefix =
          url + ": entry '#00023.bin' (header at byte offset " + std::to_string(at) + ")";
      EXPECT_EQ(std::string(e.what()).rfind(prefix, 0), 0u) << e.what();
      EXPECT_NE(std::string(e.what()).find("bad header checksum"), std::string::npos);
    }
  }
  o.on_error = OnError::kSkip;
  ShardedLoader loader(open_dataset({.manifest = manifest_}), o, {.rank = 0, .size = 1});
  const auto seen = drain(loader);
  EXPECT_EQ(seen.size(), 103u);
  EXPECT_EQ(loader.stats().skipped, 1u);
  // Shard 1 starts at sample 20: its sample 3 is sample 23, in stream order.
  EXPECT_TRUE(seen[23].repeat);
  EXPECT_EQ(seen[23].number, 22u);  // a repeat of the last good one
  EXPECT_EQ(seen[24].number, 24u);
}

TEST_F(LoaderTest, TruncatedShardIsCaughtAtOpen) {
  std::filesystem::resize_file(dir_.path() / "data-000003.tar", 4000);
  try {
    dataset();
    FAIL() << "expected an error";
  } catch (const ShardingError& e) {
    EXPECT_NE(std::string(e.what()).find("data-000003.tar: the manifest says 21 samples and"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(LoaderTest, PrefetchStaysWithinItsBytesInFlightBound) {
  LoaderOptions o;
  o.read_bytes = 2048;
  o.max_bytes_in_flight = 6000;
  o.prefetch_threads = 4;
  ShardedLoader loader(dataset(), o);
  std::size_t n = 0;
  while (loader.next()) ++n;
  EXPECT_EQ(n, 103u);
  const LoaderStats s = loader.stats();
  EXPECT_GT(s.max_bytes_in_flight, 0u);
  EXPECT_LE(s.max_bytes_in_flight, 6000u);
  EXPECT_EQ(s.samples, 103u);
  EXPECT_GT(s.bytes, 0u);
  EXPECT_GE(s.stall_fraction(), 0.0);
  EXPECT_LE(s.stall_fraction(), 1.0);
}

TEST_F(LoaderTest, WaitsAreCountedWithTheEpochsFirstPieceApart) {
  LoaderOptions o;
  o.read_bytes = 2048;
  o.prefetch_threads = 1;
  ShardedLoader loader(dataset(), o);
  while (loader.next()) {
  }
  const LoaderStats s = loader.stats();
  EXPECT_EQ(s.waits == 0, s.wait_s == 0.0);
  EXPECT_LE(s.first_wait_s, s.wait_s);
  EXPECT_LE(s.waits, s.bytes / 512);  // at most one per piece
  if (s.waits == 1 && s.first_wait_s > 0) {
    EXPECT_DOUBLE_EQ(s.first_wait_s, s.wait_s);
  }
}

TEST_F(LoaderTest, TheNextEpochIsReadAheadAndKeepsTheSequence) {
  LoaderOptions ahead = shuffled(), not_ahead = shuffled();
  not_ahead.read_ahead_next_epoch = false;
  ShardedLoader a(dataset(), ahead), b(dataset(), not_ahead);
  for (int epoch = 0; epoch < 3; ++epoch) EXPECT_EQ(drain(a), drain(b)) << "epoch " << epoch;
  // Each epoch's reads began while the one before served its last samples
  // (the third's next one too: the loader cannot know that it is the last).
  EXPECT_EQ(a.stats().epochs_read_ahead, 3u);
  EXPECT_EQ(b.stats().epochs_read_ahead, 0u);
  EXPECT_EQ(a.stats().samples, b.stats().samples);
}

TEST_F(LoaderTest, RestoreDropsAnEpochReadAheadUnlessItStartsThere) {
  ShardedLoader whole(dataset(), shuffled());
  auto expected = drain(whole);
  const auto next_epoch = drain(whole);
  expected.insert(expected.end(), next_epoch.begin(), next_epoch.end());

  ShardedLoader probe(dataset(), shuffled());
  drain(probe, 13);
  const LoaderState at13 = probe.state();

  // Read ahead into epoch 1, then sent back to sample 13 of epoch 0.
  ShardedLoader loader(dataset(), shuffled());
  drain(loader, expected.size() / 2 - 1);
  ASSERT_EQ(loader.stats().epochs_read_ahead, 1u);
  loader.restore(at13);
  auto got = drain(loader);
  const auto second = drain(loader);
  got.insert(got.end(), second.begin(), second.end());
  EXPECT_EQ(got, std::vector<Seen>(expected.begin() + 13, expected.end()));

  // Restored to where the read-ahead epoch starts: the same samples.
  ShardedLoader again(dataset(), shuffled());
  drain(again);
  const LoaderState start_of_1 = again.state();
  again.restore(start_of_1);
  EXPECT_EQ(drain(again), next_epoch);
}

TEST_F(LoaderTest, GroupDisagreementIsAnErrorNamingTheRanks) {
  GroupView g{.rank = 0, .size = 2, .allgather = [](const std::string& mine) {
                return std::vector<std::string>{mine, "something else"};
              }};
  ShardedLoader loader(dataset(), shuffled(), g);
  try {
    loader.next();
    FAIL() << "expected an error";
  } catch (const ShardingError& e) {
    EXPECT_NE(
        std::string(e.what()).find("the ranks of the group disagree about the data: rank 0: "),
        std::string::npos);
    EXPECT_NE(std::string(e.what()).find("rank 1: something else"), std::string::npos);
  }
}

TEST_F(LoaderTest, NodeLocalCacheServesTheSameSamples) {
  LoaderOptions o = shuffled();
  ShardedLoader plain(dataset(), o);
  o.cache_dir = (dir_.path() / "cache").string();
  ShardedLoader cached(dataset(), o);
  EXPECT_EQ(drain(plain), drain(cached));
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(o.cache_dir))
    files += e.path().extension() == ".shard";
  EXPECT_EQ(files, 5u);
}

}  // namespace
}  // namespace xpscale
