// Debug check mode: a rank that calls a different collective, or the same
// one with another count, gets the same clear error on every rank instead
// of a hang or wrong numbers.
#include <mpi.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "xpscale/collectives/communicator.h"

namespace xpscale::collectives {
namespace {

std::unique_ptr<Communicator> checked_communicator() {
  Options options;
  options.backend = "mpi";
  options.debug_checks = true;
  options.timeout = std::chrono::seconds(30);
  return make_communicator(MPI_COMM_WORLD, options);
}

// Runs call on this rank and returns the CollectiveError text ("" when
// nothing was thrown).
template <class Call>
std::string error_of(Call&& call) {
  try {
    call();
  } catch (const CollectiveError& e) {
    return e.what();
  }
  return {};
}

TEST(DebugChecks, CountMismatchNamesBothRanksAndBothCalls) {
  auto comm = checked_communicator();
  std::vector<float> data(8, 1.0F);
  comm->allreduce(data.data(), data.data(), 8, DataType::kF32, ReduceOp::kSum);  // #1 agrees
  const std::size_t count = comm->rank() == 1 ? 8 : 7;
  const std::string error = error_of(
      [&] { comm->allreduce(data.data(), data.data(), count, DataType::kF32, ReduceOp::kSum); });
  EXPECT_NE(error.find("rank 1 called allreduce(f32, sum, count=8) #2 but rank 0 called "
                       "allreduce(f32, sum, count=7) #2"),
            std::string::npos)
      << error;
  // Nothing was sent: the next agreeing call works and adds up.
  std::vector<float> ones(8, 1.0F);
  comm->allreduce(ones.data(), ones.data(), 8, DataType::kF32, ReduceOp::kSum);
  EXPECT_EQ(ones[7], static_cast<float>(comm->size()));
}

TEST(DebugChecks, OrderMismatchNamesBothCalls) {
  auto comm = checked_communicator();
  std::vector<double> data(4, 2.0);
  const std::string error = error_of([&] {
    if (comm->rank() == 0) {
      comm->broadcast(data.data(), 4, DataType::kF64, 0);
      comm->allreduce(data.data(), data.data(), 4, DataType::kF64, ReduceOp::kMax);
    } else {
      comm->allreduce(data.data(), data.data(), 4, DataType::kF64, ReduceOp::kMax);
      comm->broadcast(data.data(), 4, DataType::kF64, 0);
    }
  });
  EXPECT_NE(error.find("rank 1 called allreduce(f64, max, count=4) #1 but rank 0 called "
                       "broadcast(f64, count=4, root=0) #1"),
            std::string::npos)
      << error;
  if (comm->size() > 2) {
    EXPECT_NE(error.find("differ from rank 0"), std::string::npos) << error;
  }
}

TEST(DebugChecks, DtypeAndOpMismatchesAreCaughtToo) {
  auto comm = checked_communicator();
  std::vector<std::int64_t> data(3, 1);
  const DataType type = comm->rank() == comm->size() - 1 ? DataType::kI32 : DataType::kI64;
  const std::string error =
      error_of([&] { comm->allreduce(data.data(), data.data(), 3, type, ReduceOp::kSum); });
  const std::string last = std::to_string(comm->size() - 1);
  EXPECT_NE(error.find("rank " + last +
                       " called allreduce(i32, sum, count=3) #1 but rank 0 "
                       "called allreduce(i64, sum, count=3) #1"),
            std::string::npos)
      << error;
}

TEST(DebugChecks, AgreeingCallsOfEveryKindPass) {
  auto comm = checked_communicator();
  const auto size = static_cast<std::size_t>(comm->size());
  std::vector<float> send(2 * size, 1.0F);
  std::vector<float> recv(2 * size, 0.0F);
  comm->allreduce(send.data(), recv.data(), 2, DataType::kF32, ReduceOp::kAvg);
  comm->broadcast(send.data(), 2, DataType::kF32, 0);
  comm->allgather(send.data(), recv.data(), 2, DataType::kF32);
  comm->reduce_scatter(send.data(), recv.data(), 2, DataType::kF32, ReduceOp::kSum);
  comm->allreduce_async(send.data(), recv.data(), 2, DataType::kF32, ReduceOp::kMin)->wait();
  comm->barrier();
  EXPECT_EQ(recv[0], 1.0F);
}

TEST(DebugChecks, EnvironmentOnOneRankTurnsThemOnForTheGroup) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) setenv("XPSCALE_COLLECTIVES_DEBUG", "1", 1);
  Options options;
  options.backend = "mpi";
  auto comm = make_communicator(MPI_COMM_WORLD, options);
  if (rank == 0) unsetenv("XPSCALE_COLLECTIVES_DEBUG");
  std::vector<float> data(8, 1.0F);
  const std::size_t count = rank == 1 ? 5 : 6;
  const std::string error = error_of(
      [&] { comm->allreduce(data.data(), data.data(), count, DataType::kF32, ReduceOp::kSum); });
  EXPECT_NE(error.find("rank 1 called allreduce(f32, sum, count=5) #1"), std::string::npos)
      << error;
}

}  // namespace
}  // namespace xpscale::collectives
