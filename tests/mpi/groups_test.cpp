// Communicators over different groups, and several over the same ranks, run
// at the same time without seeing each other's data.
#include <mpi.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "collectives_test_util.h"
#include "xpscale/collectives/communicator.h"

namespace xpscale::collectives {
namespace {

using testing_util::Buffer;
using testing_util::input;
using testing_util::reference;

Options mpi_options() {
  Options options;
  options.backend = "mpi";
  options.timeout = std::chrono::seconds(60);
  return options;
}

// Splits MPI_COMM_WORLD by rank parity; freed with the object.
class ParityGroup {
 public:
  ParityGroup() {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    color_ = rank % 2;
    MPI_Comm_split(MPI_COMM_WORLD, color_, rank, &comm_);
  }
  ~ParityGroup() { MPI_Comm_free(&comm_); }
  ParityGroup(const ParityGroup&) = delete;
  ParityGroup& operator=(const ParityGroup&) = delete;
  MPI_Comm comm() const { return comm_; }
  int color() const { return color_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int color_ = 0;
};

std::string first_mismatch(const Buffer& got, ReduceOp op, int size, int salt) {
  for (std::size_t i = 0; i < got.count(); ++i) {
    const double want = reference(op, got.type(), size, i, salt);
    if (got.get(i) != want) {
      return "element " + std::to_string(i) + ": expected " + std::to_string(want) + ", got " +
             std::to_string(got.get(i));
    }
  }
  return {};
}

TEST(Groups, TwoGroupsAndTheWorldReduceAtTheSameTimeWithoutCrossTalk) {
  const ParityGroup group;
  auto mine = make_communicator(group.comm(), mpi_options());
  auto all = make_communicator(MPI_COMM_WORLD, mpi_options());
  constexpr std::size_t kCount = 4099;
  for (int step = 0; step < 20; ++step) {
    // Each group (and the world) reduces different data; a message that
    // reached the wrong communicator would show up as a wrong sum.
    const int group_salt = 100 * (group.color() + 1) + step;
    const int world_salt = step;
    Buffer world_data(DataType::kF32, kCount);
    Buffer group_data(DataType::kF64, kCount);
    for (std::size_t i = 0; i < kCount; ++i) {
      world_data.set(i, input(all->rank(), i, DataType::kF32, world_salt));
      group_data.set(i, input(mine->rank(), i, DataType::kF64, group_salt));
    }
    auto world_work = all->allreduce_async(world_data.data(), world_data.data(), kCount,
                                           DataType::kF32, ReduceOp::kSum);
    if (step % 2 == 0) {
      mine->allreduce(group_data.data(), group_data.data(), kCount, DataType::kF64, ReduceOp::kAvg);
    } else {
      mine->allreduce_async(group_data.data(), group_data.data(), kCount, DataType::kF64,
                            ReduceOp::kAvg)
          ->wait();
    }
    world_work->wait();
    EXPECT_EQ(first_mismatch(group_data, ReduceOp::kAvg, mine->size(), group_salt), "")
        << "group " << group.color() << " step " << step;
    EXPECT_EQ(first_mismatch(world_data, ReduceOp::kSum, all->size(), world_salt), "")
        << "world step " << step;

    // The group's root broadcasts its color: each group sees its own.
    int color = group.color() * 1000 + step;
    if (mine->rank() != 0) color = -1;
    mine->broadcast(&color, 1, DataType::kI32, 0);
    EXPECT_EQ(color, group.color() * 1000 + step);
  }
}

TEST(Groups, TwoCommunicatorsOverTheSameRanksAreIndependent) {
  auto a = make_communicator(MPI_COMM_WORLD, mpi_options());
  auto b = make_communicator(MPI_COMM_WORLD, mpi_options());
  constexpr std::size_t kCount = 1000;
  Buffer x(DataType::kI64, kCount);
  Buffer y(DataType::kI64, kCount);
  for (std::size_t i = 0; i < kCount; ++i) {
    x.set(i, input(a->rank(), i, DataType::kI64, 1));
    y.set(i, input(b->rank(), i, DataType::kI64, 2));
  }
  // a's call is still in flight while b's runs and completes.
  auto work = a->allreduce_async(x.data(), x.data(), kCount, DataType::kI64, ReduceOp::kMax);
  b->allreduce(y.data(), y.data(), kCount, DataType::kI64, ReduceOp::kMin);
  work->wait();
  EXPECT_EQ(first_mismatch(x, ReduceOp::kMax, a->size(), 1), "");
  EXPECT_EQ(first_mismatch(y, ReduceOp::kMin, b->size(), 2), "");
}

}  // namespace
}  // namespace xpscale::collectives
