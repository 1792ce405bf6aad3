// The sharded loader across real MPI ranks: equal counts for sizes that do
// not divide, every sample once per epoch, and a group that disagrees about
// its data fails on every rank instead of hanging.
#include <mpi.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "../unit/sharding_test_util.h"
#include "xpscale/sharding/error.h"
#include "xpscale/trial/group_view.h"

namespace xpscale {
namespace {

// Rank 0 writes the dataset into a fresh directory; all ranks get its path.
class LoaderMpiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    comm_ = collectives::make_communicator(MPI_COMM_WORLD);
    std::string manifest;
    if (comm_->rank() == 0) {
      dir_ = std::make_unique<test::TempDir>();
      manifest = test::make_dataset(dir_->path(), 211, 6);
    }
    int length = static_cast<int>(manifest.size());
    MPI_Bcast(&length, 1, MPI_INT, 0, MPI_COMM_WORLD);
    manifest.resize(static_cast<std::size_t>(length));
    MPI_Bcast(manifest.data(), length, MPI_CHAR, 0, MPI_COMM_WORLD);
    manifest_ = manifest;
  }
  void TearDown() override { MPI_Barrier(MPI_COMM_WORLD); }

  std::unique_ptr<collectives::Communicator> comm_;
  std::unique_ptr<test::TempDir> dir_;
  std::string manifest_;
};

TEST_F(LoaderMpiTest, EqualCountsAndEverySampleOncePerEpoch) {
  LoaderOptions o;
  o.seed = 3;
  o.shuffle_buffer_bytes = 4096;
  ShardedLoader loader(open_dataset({.manifest = manifest_}), o, make_group_view(*comm_));
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::vector<std::int64_t> mine;
    std::int64_t count = 0;
    while (auto s = loader.next()) {
      ++count;
      if (!s->repeat) mine.push_back(static_cast<std::int64_t>(test::sample_number(*s)));
    }
    std::int64_t lo = 0, hi = 0;
    MPI_Allreduce(&count, &lo, 1, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&count, &hi, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    EXPECT_EQ(lo, hi);
    EXPECT_EQ(static_cast<std::uint64_t>(count), loader.samples_per_epoch());
    // Gather every rank's real samples on every rank.
    int n = static_cast<int>(mine.size()), size = comm_->size();
    std::vector<int> counts(static_cast<std::size_t>(size)), displs(static_cast<std::size_t>(size));
    MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD);
    int total = 0;
    for (int r = 0; r < size; ++r) {
      displs[static_cast<std::size_t>(r)] = total;
      total += counts[static_cast<std::size_t>(r)];
    }
    std::vector<std::int64_t> all(static_cast<std::size_t>(total));
    MPI_Allgatherv(mine.data(), n, MPI_INT64_T, all.data(), counts.data(), displs.data(),
                   MPI_INT64_T, MPI_COMM_WORLD);
    EXPECT_EQ(all.size(), 211u);
    EXPECT_EQ(std::set<std::int64_t>(all.begin(), all.end()).size(), 211u);
  }
}

TEST_F(LoaderMpiTest, RanksWithDifferentSeedsFailTogether) {
  LoaderOptions o;
  o.seed = comm_->rank() == comm_->size() - 1 ? 99 : 3;
  ShardedLoader loader(open_dataset({.manifest = manifest_}), o, make_group_view(*comm_));
  try {
    loader.next();
    ADD_FAILURE() << "expected a ShardingError";
  } catch (const ShardingError& e) {
    EXPECT_NE(std::string(e.what()).find("the ranks of the group disagree about the data"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("seed 99"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace xpscale
