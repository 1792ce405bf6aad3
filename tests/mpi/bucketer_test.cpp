// GradientBucketer: the bucket layout, and averages equal to one allreduce
// per tensor whatever order each rank marks its tensors ready in.
#include <mpi.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "collectives_test_util.h"
#include "xpscale/collectives/bucketer.h"
#include "xpscale/collectives/communicator.h"

namespace xpscale::collectives {
namespace {

using testing_util::Buffer;

std::unique_ptr<Communicator> mpi_communicator() {
  Options options;
  options.backend = "mpi";
  options.timeout = std::chrono::seconds(60);
  return make_communicator(MPI_COMM_WORLD, options);
}

TEST(BucketerLayout, ReverseOrderSplitsAtCapsAndDtypes) {
  auto comm = mpi_communicator();
  BucketerOptions options;
  options.first_bucket_bytes = 1024;
  options.bucket_bytes = 4096;
  GradientBucketer bucketer(*comm, options);
  Buffer t0(DataType::kF32, 100), t1(DataType::kF32, 100), t2(DataType::kF32, 2000),
      t3(DataType::kF32, 300), t4(DataType::kF64, 10), t5(DataType::kF32, 200);
  for (Buffer* t : {&t0, &t1, &t2, &t3, &t4, &t5}) bucketer.add(t->data(), t->count(), t->type());
  // Back to front: t5 | t4 (f64) | t3 | t2 (over the cap, alone) | t1 t0.
  ASSERT_EQ(bucketer.bucket_count(), 5U);
  const std::vector<std::size_t> expected = {4, 4, 3, 2, 1, 0};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(bucketer.bucket_of(i), expected[i]) << "tensor " << i;
  }
  EXPECT_EQ(bucketer.bucket_bytes(3), 8000U);
  EXPECT_EQ(bucketer.bucket_bytes(4), 800U);
}

TEST(BucketerLayout, FirstBucketHasItsOwnCap) {
  auto comm = mpi_communicator();
  BucketerOptions options;
  options.first_bucket_bytes = 1024;
  options.bucket_bytes = 4096;
  std::vector<Buffer> tensors(6, Buffer(DataType::kF32, 200));  // 800 bytes each
  GradientBucketer reverse(*comm, options);
  for (Buffer& t : tensors) reverse.add(t.data(), t.count(), t.type());
  ASSERT_EQ(reverse.bucket_count(), 2U);
  EXPECT_EQ(reverse.bucket_of(5), 0U);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(reverse.bucket_of(i), 1U) << i;

  options.order = BucketOrder::kForward;
  GradientBucketer forward(*comm, options);
  for (Buffer& t : tensors) forward.add(t.data(), t.count(), t.type());
  ASSERT_EQ(forward.bucket_count(), 2U);
  EXPECT_EQ(forward.bucket_of(0), 0U);
  for (std::size_t i = 1; i < 6; ++i) EXPECT_EQ(forward.bucket_of(i), 1U) << i;
}

TEST(BucketerLayout, DdpsOneMiBFirstBucketWhenAsked) {
  auto comm = mpi_communicator();
  BucketerOptions options;
  options.first_bucket_bytes = kDdpFirstBucketBytes;
  GradientBucketer bucketer(*comm, options);
  std::vector<Buffer> tensors(200, Buffer(DataType::kF32, 4096));  // 16 KiB each
  for (Buffer& t : tensors) bucketer.add(t.data(), t.count(), t.type());
  ASSERT_EQ(bucketer.bucket_count(), 2U);
  EXPECT_EQ(bucketer.bucket_bytes(0), std::size_t{1} << 20);  // 64 tensors
  EXPECT_EQ(bucketer.bucket_bytes(1), 136U * 16384U);
}

// MPI reduces buckets inline (no async progress): a small first bucket
// would overlap nothing, so by default every bucket has the 25 MiB cap.
TEST(BucketerLayout, WithoutAsyncProgressTheFirstBucketHasTheCommonCap) {
  auto comm = mpi_communicator();
  ASSERT_FALSE(comm->async_progress());
  GradientBucketer bucketer(*comm);
  std::vector<Buffer> tensors(1700, Buffer(DataType::kF32, 4096));  // 16 KiB each
  for (Buffer& t : tensors) bucketer.add(t.data(), t.count(), t.type());
  ASSERT_EQ(bucketer.bucket_count(), 2U);
  EXPECT_EQ(bucketer.bucket_bytes(0), std::size_t{25} << 20);  // 1600 tensors
  EXPECT_EQ(bucketer.bucket_bytes(1), 100U * 16384U);
}

TEST(BucketerUse, MisuseThrows) {
  auto comm = mpi_communicator();
  GradientBucketer bucketer(*comm);
  Buffer t(DataType::kF32, 10);
  bucketer.add(t.data(), t.count(), t.type());
  EXPECT_THROW(bucketer.mark_ready(1), CollectiveError);
  bucketer.mark_ready(0);
  EXPECT_THROW(bucketer.mark_ready(0), CollectiveError);
  EXPECT_THROW(bucketer.add(t.data(), t.count(), t.type()), CollectiveError);
  bucketer.finish();
  EXPECT_EQ(t.get(0), 0.0);  // zero-filled input, averaged
}

// Random values (not exact in the sum), random per-rank ready order, three
// steps with the same bucketer: equal to one allreduce per tensor within
// floating tolerance.
void expect_matches_per_tensor(const BucketerOptions& options) {
  auto comm = mpi_communicator();
  std::mt19937 rng(1234U + static_cast<unsigned>(comm->rank()));
  std::uniform_real_distribution<double> values(-1.0, 1.0);
  std::vector<Buffer> grads;
  for (int i = 0; i < 60; ++i) {
    const DataType type = i % 7 == 3    ? DataType::kF64
                          : i % 11 == 5 ? DataType::kBF16
                                        : DataType::kF32;
    // Sizes must agree across ranks: draw them from a rank-independent stream.
    std::mt19937 same(static_cast<unsigned>(i));
    grads.emplace_back(type, std::uniform_int_distribution<std::size_t>(0, 5000)(same));
  }
  grads.emplace_back(DataType::kF32, 300000);  // over any small cap
  GradientBucketer bucketer(*comm, options);
  for (Buffer& g : grads) bucketer.add(g.data(), g.count(), g.type());
  ASSERT_GT(bucketer.bucket_count(), 1U);

  for (int step = 0; step < 3; ++step) {
    std::vector<Buffer> expected;
    for (Buffer& g : grads) {
      for (std::size_t i = 0; i < g.count(); ++i) g.set(i, values(rng));
      expected.push_back(g);
      comm->allreduce(expected.back().data(), expected.back().data(), g.count(), g.type(),
                      ReduceOp::kAvg);
    }
    std::vector<std::size_t> order(grads.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    // Leave a few unmarked: finish() takes them as ready.
    for (std::size_t k = 0; k + 3 < order.size(); ++k) bucketer.mark_ready(order[k]);
    bucketer.finish();
    for (std::size_t t = 0; t < grads.size(); ++t) {
      const double tolerance = grads[t].type() == DataType::kBF16  ? 1e-2
                               : grads[t].type() == DataType::kF32 ? 1e-6
                                                                   : 1e-14;
      for (std::size_t i = 0; i < grads[t].count(); ++i) {
        const double want = expected[t].get(i);
        const double got = grads[t].get(i);
        if (std::abs(got - want) > tolerance * std::max(1.0, std::abs(want))) {
          ADD_FAILURE() << "step " << step << " tensor " << t << " element " << i << ": bucketed "
                        << got << ", per-tensor " << want;
          return;
        }
      }
    }
  }
}

TEST(BucketerUse, SmallBucketsMatchPerTensorAllreduce) {
  BucketerOptions options;
  options.first_bucket_bytes = 4096;
  options.bucket_bytes = 64 * 1024;
  expect_matches_per_tensor(options);
}

TEST(BucketerUse, DefaultBucketsMatchPerTensorAllreduce) { expect_matches_per_tensor({}); }

TEST(BucketerUse, ForwardOrderMatchesPerTensorAllreduce) {
  BucketerOptions options;
  options.first_bucket_bytes = 2048;
  options.bucket_bytes = 32 * 1024;
  options.order = BucketOrder::kForward;
  expect_matches_per_tensor(options);
}

// Slices of one flat buffer, registered as a model with one gradient
// buffer does. Adjacent slices make a bucket that is reduced in place; a
// gap between two slices must not be touched (it falls back to staging).
void expect_flat_slices_match(std::size_t gap) {
  auto comm = mpi_communicator();
  const std::vector<std::size_t> sizes = {4000, 100, 3000, 10, 1800};
  std::vector<std::size_t> offsets;
  std::size_t end = 0;
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    if (k == 3) end += gap;  // between the third and fourth slice
    offsets.push_back(end);
    end += sizes[k];
  }
  std::vector<float> flat(end);
  std::mt19937 rng(77U + static_cast<unsigned>(comm->rank()));
  std::uniform_real_distribution<float> values(-1.0F, 1.0F);
  GradientBucketer bucketer(*comm);
  for (std::size_t k = 0; k < sizes.size(); ++k)
    bucketer.add(flat.data() + offsets[k], sizes[k], DataType::kF32);
  ASSERT_EQ(bucketer.bucket_count(), 1U);

  for (int step = 0; step < 2; ++step) {
    for (float& v : flat) v = values(rng);
    std::vector<float> expected = flat;  // the gap keeps this rank's values
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      comm->allreduce(expected.data() + offsets[k], expected.data() + offsets[k], sizes[k],
                      DataType::kF32, ReduceOp::kAvg);
    }
    for (std::size_t k = sizes.size(); k-- > 0;) bucketer.mark_ready(k);
    bucketer.finish();
    for (std::size_t i = 0; i < flat.size(); ++i) {
      if (std::abs(flat[i] - expected[i]) > 1e-6F) {
        ADD_FAILURE() << "gap " << gap << ", step " << step << ", element " << i << ": bucketed "
                      << flat[i] << ", expected " << expected[i];
        return;
      }
    }
  }
}

TEST(BucketerUse, AdjacentSlicesOfOneBufferAreReducedInPlace) { expect_flat_slices_match(0); }

TEST(BucketerUse, SlicesWithAGapLeaveTheGapAlone) { expect_flat_slices_match(64); }

}  // namespace
}  // namespace xpscale::collectives
