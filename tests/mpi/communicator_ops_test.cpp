// Every collective x dtype x op x size (0, 1, 7, 2^20+3 elements) of the MPI
// backend against the serial reference of collectives_test_util.h, out of
// place, in place (each convention) and asynchronously.
#include <mpi.h>

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "collectives_test_util.h"
#include "xpscale/collectives/communicator.h"
#include "xpscale/collectives/device.h"

namespace xpscale::collectives {
namespace {

using testing_util::Buffer;
using testing_util::input;
using testing_util::reference;

constexpr std::size_t kBig = (std::size_t{1} << 20) + 3;

enum class Mode { kOutOfPlace, kInPlace, kInPlaceAtBlock, kAsync };

std::string mode_name(Mode m) {
  switch (m) {
    case Mode::kOutOfPlace:
      return "out";
    case Mode::kInPlace:
      return "inplace";
    case Mode::kInPlaceAtBlock:
      return "inplace_block";
    case Mode::kAsync:
      return "async";
  }
  return "?";
}

// One MPI-backend communicator over MPI_COMM_WORLD for the whole file.
Communicator& world() {
  static const std::unique_ptr<Communicator> comm = [] {
    Options options;
    options.backend = "mpi";
    options.timeout = std::chrono::seconds(60);
    return make_communicator(MPI_COMM_WORLD, options);
  }();
  return *comm;
}

// Rank `rank`'s inputs and the expected results, computed once per
// (type, count) and (op, type, count): the 2^20+3-element cases are run in
// several modes, and recomputing them per mode would dominate the run.
const Buffer& cached_inputs(int rank, DataType type, std::size_t count) {
  static std::map<std::pair<DataType, std::size_t>, Buffer> cache;
  auto it = cache.find({type, count});
  if (it == cache.end()) {
    Buffer b(type, count);
    for (std::size_t i = 0; i < count; ++i) b.set(i, input(rank, i, type));
    it = cache.emplace(std::make_pair(type, count), std::move(b)).first;
  }
  return it->second;
}

const std::vector<double>& cached_reference(ReduceOp op, DataType type, int size,
                                            std::size_t count) {
  static std::map<std::tuple<ReduceOp, DataType, std::size_t>, std::vector<double>> cache;
  auto it = cache.find({op, type, count});
  if (it == cache.end()) {
    std::vector<double> v(count);
    for (std::size_t i = 0; i < count; ++i) v[i] = reference(op, type, size, i);
    it = cache.emplace(std::make_tuple(op, type, count), std::move(v)).first;
  }
  return it->second;
}

// The index of the first element of `got` (from `first` on, `n` of them)
// that differs from expected(i), or nullopt.
template <class Expected>
std::optional<std::string> first_mismatch(const Buffer& got, std::size_t first, std::size_t n,
                                          Expected expected) {
  for (std::size_t i = 0; i < n; ++i) {
    const double want = expected(i);
    const double have = got.get(first + i);
    if (!(have == want)) {
      return "element " + std::to_string(i) + ": expected " + std::to_string(want) + ", got " +
             std::to_string(have);
    }
  }
  return std::nullopt;
}

// ---- allreduce ------------------------------------------------------------

using ReduceCase = std::tuple<ReduceOp, DataType, std::size_t, Mode>;

std::string reduce_case_name(const testing::TestParamInfo<ReduceCase>& info) {
  const auto& [op, type, count, mode] = info.param;
  return std::string(reduce_op_name(op)) + "_" + std::string(data_type_name(type)) + "_n" +
         std::to_string(count) + "_" + mode_name(mode);
}

class Allreduce : public testing::TestWithParam<ReduceCase> {};

TEST_P(Allreduce, MatchesSerialReference) {
  const auto& [op, type, count, mode] = GetParam();
  Communicator& comm = world();
  Buffer send = cached_inputs(comm.rank(), type, count);
  Buffer recv(type, count);
  switch (mode) {
    case Mode::kOutOfPlace:
      comm.allreduce(send.data(), recv.data(), count, type, op);
      break;
    case Mode::kInPlace:
    case Mode::kInPlaceAtBlock:
      std::memcpy(recv.data(), send.data(), count * data_type_size(type));
      comm.allreduce(recv.data(), recv.data(), count, type, op);
      break;
    case Mode::kAsync: {
      auto work = comm.allreduce_async(send.data(), recv.data(), count, type, op);
      work->wait();
      EXPECT_TRUE(work->test());
      break;
    }
  }
  const std::vector<double>& expected = cached_reference(op, type, comm.size(), count);
  const auto bad = first_mismatch(recv, 0, count, [&](std::size_t i) { return expected[i]; });
  EXPECT_FALSE(bad) << *bad;
  if (mode == Mode::kOutOfPlace && count > 0) {
    // Out of place leaves the input alone.
    EXPECT_EQ(send.get(count - 1), input(comm.rank(), count - 1, type));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Mpi, Allreduce,
    testing::Combine(testing::Values(ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMin,
                                     ReduceOp::kMax),
                     testing::Values(DataType::kF32, DataType::kF64, DataType::kF16,
                                     DataType::kBF16, DataType::kI32, DataType::kI64),
                     testing::Values(std::size_t{0}, std::size_t{1}, std::size_t{7}, kBig),
                     testing::Values(Mode::kOutOfPlace, Mode::kInPlace, Mode::kAsync)),
    reduce_case_name);

// ---- reduce_scatter -------------------------------------------------------

class ReduceScatter : public testing::TestWithParam<ReduceCase> {};

// The size is the total input: recv_count is size / ranks, rounded up (so
// 2^20+3 elements in all, not per rank, which keeps the run short).
TEST_P(ReduceScatter, MatchesSerialReference) {
  const auto& [op, type, total, mode] = GetParam();
  Communicator& comm = world();
  const auto size = static_cast<std::size_t>(comm.size());
  const std::size_t count = total <= 7 ? total : (total + size - 1) / size;
  const auto rank = static_cast<std::size_t>(comm.rank());
  Buffer send = cached_inputs(comm.rank(), type, size * count);
  Buffer recv(type, count);
  const Buffer* result = &recv;
  std::size_t result_at = 0;
  switch (mode) {
    case Mode::kOutOfPlace:
      comm.reduce_scatter(send.data(), recv.data(), count, type, op);
      break;
    case Mode::kInPlace:  // MPI's convention: result at the start
      comm.reduce_scatter(send.data(), send.data(), count, type, op);
      result = &send;
      break;
    case Mode::kInPlaceAtBlock:  // NCCL's convention: result in own block
      comm.reduce_scatter(send.data(), send.at(rank * count), count, type, op);
      result = &send;
      result_at = rank * count;
      break;
    case Mode::kAsync:
      comm.reduce_scatter_async(send.data(), recv.data(), count, type, op)->wait();
      break;
  }
  const std::vector<double>& expected = cached_reference(op, type, comm.size(), size * count);
  const auto bad = first_mismatch(*result, result_at, count,
                                  [&](std::size_t i) { return expected[rank * count + i]; });
  EXPECT_FALSE(bad) << *bad;
}

INSTANTIATE_TEST_SUITE_P(
    Mpi, ReduceScatter,
    testing::Combine(
        testing::Values(ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMin, ReduceOp::kMax),
        testing::Values(DataType::kF32, DataType::kF64, DataType::kF16, DataType::kBF16,
                        DataType::kI32, DataType::kI64),
        testing::Values(std::size_t{0}, std::size_t{1}, std::size_t{7}, kBig),
        testing::Values(Mode::kOutOfPlace, Mode::kInPlace, Mode::kInPlaceAtBlock, Mode::kAsync)),
    reduce_case_name);

// ---- broadcast and allgather ---------------------------------------------

using MoveCase = std::tuple<DataType, std::size_t, Mode>;

std::string move_case_name(const testing::TestParamInfo<MoveCase>& info) {
  const auto& [type, count, mode] = info.param;
  return std::string(data_type_name(type)) + "_n" + std::to_string(count) + "_" + mode_name(mode);
}

class Broadcast : public testing::TestWithParam<MoveCase> {};

TEST_P(Broadcast, EveryRankGetsTheRootsBuffer) {
  const auto& [type, count, mode] = GetParam();
  Communicator& comm = world();
  for (const int root : {0, comm.size() - 1}) {
    Buffer buffer(type, count);
    for (std::size_t i = 0; i < count; ++i) buffer.set(i, input(comm.rank(), i, type));
    if (mode == Mode::kAsync) {
      comm.broadcast_async(buffer.data(), count, type, root)->wait();
    } else {
      comm.broadcast(buffer.data(), count, type, root);
    }
    const auto bad =
        first_mismatch(buffer, 0, count, [&](std::size_t i) { return input(root, i, type); });
    EXPECT_FALSE(bad) << "root " << root << ": " << *bad;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Mpi, Broadcast,
    testing::Combine(testing::Values(DataType::kF32, DataType::kF64, DataType::kF16,
                                     DataType::kBF16, DataType::kI32, DataType::kI64),
                     testing::Values(std::size_t{0}, std::size_t{1}, std::size_t{7}, kBig),
                     testing::Values(Mode::kInPlace, Mode::kAsync)),
    move_case_name);

class Allgather : public testing::TestWithParam<MoveCase> {};

// As for reduce_scatter, the size is the total (the output).
TEST_P(Allgather, BlockRHoldsRankRsInput) {
  const auto& [type, total, mode] = GetParam();
  Communicator& comm = world();
  const auto size = static_cast<std::size_t>(comm.size());
  const auto rank = static_cast<std::size_t>(comm.rank());
  const std::size_t count = total <= 7 ? total : (total + size - 1) / size;
  const Buffer& send = cached_inputs(comm.rank(), type, count);
  Buffer recv(type, size * count);
  const std::size_t bytes = count * data_type_size(type);
  switch (mode) {
    case Mode::kOutOfPlace:
      comm.allgather(send.data(), recv.data(), count, type);
      break;
    case Mode::kInPlace:  // own block read from the start of recv
      std::memcpy(recv.data(), send.data(), bytes);
      comm.allgather(recv.data(), recv.data(), count, type);
      break;
    case Mode::kInPlaceAtBlock:  // MPI's and NCCL's convention
      std::memcpy(recv.at(rank * count), send.data(), bytes);
      comm.allgather(recv.at(rank * count), recv.data(), count, type);
      break;
    case Mode::kAsync:
      comm.allgather_async(send.data(), recv.data(), count, type)->wait();
      break;
  }
  const auto bad = first_mismatch(recv, 0, size * count, [&](std::size_t i) {
    return input(static_cast<int>(i / count), i % count, type);
  });
  EXPECT_FALSE(bad) << *bad;
}

INSTANTIATE_TEST_SUITE_P(
    Mpi, Allgather,
    testing::Combine(testing::Values(DataType::kF32, DataType::kF64, DataType::kF16,
                                     DataType::kBF16, DataType::kI32, DataType::kI64),
                     testing::Values(std::size_t{0}, std::size_t{1}, std::size_t{7}, kBig),
                     testing::Values(Mode::kOutOfPlace, Mode::kInPlace, Mode::kInPlaceAtBlock,
                                     Mode::kAsync)),
    move_case_name);

// ---- the rest of the contract ---------------------------------------------

TEST(MpiCommunicator, ReportsItsGroupAndBackend) {
  Communicator& comm = world();
  int rank = -1;
  int size = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  EXPECT_EQ(comm.rank(), rank);
  EXPECT_EQ(comm.size(), size);
  EXPECT_EQ(comm.backend(), "mpi");
  EXPECT_FALSE(comm.device_memory());
}

TEST(MpiCommunicator, AutoPicksMpiWithoutGpu) {
  // This machine has no GPU; on one with a GPU the nccl tests cover auto.
  auto comm = make_communicator(MPI_COMM_WORLD);
  if (resolve_backend("auto") == "mpi") {
    EXPECT_EQ(comm->backend(), "mpi");
  }
}

TEST(MpiCommunicator, NcclWithoutGpuOrNcclThrowsSayingWhy) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "this rank has a GPU (tests/gpu covers nccl)";
  Options options;
  options.backend = "nccl";
  try {
    make_communicator(MPI_COMM_WORLD, options);
    FAIL() << "no exception";
  } catch (const CollectiveError& e) {
    const std::string what = e.what();
    const std::string expected =
        built_with_nccl() ? "backend nccl needs a CUDA device" : "this build has no NCCL";
    EXPECT_NE(what.find(expected), std::string::npos) << what;
  }
}

TEST(MpiCommunicator, UnknownBackendThrowsNamingIt) {
  Options options;
  options.backend = "gloo";
  try {
    make_communicator(MPI_COMM_WORLD, options);
    FAIL() << "no exception";
  } catch (const CollectiveError& e) {
    EXPECT_NE(std::string(e.what()).find("'gloo'"), std::string::npos) << e.what();
  }
}

TEST(MpiCommunicator, ManyAsyncCallsInFlightCompleteInAnyWaitOrder) {
  Communicator& comm = world();
  constexpr int kCalls = 8;
  constexpr std::size_t kCount = 1000;
  std::vector<Buffer> buffers;
  std::vector<std::unique_ptr<Work>> works;
  for (int c = 0; c < kCalls; ++c) {
    buffers.emplace_back(DataType::kF32, kCount);
    for (std::size_t i = 0; i < kCount; ++i) {
      buffers.back().set(i, input(comm.rank(), i, DataType::kF32, c));
    }
  }
  for (int c = 0; c < kCalls; ++c) {
    works.push_back(comm.allreduce_async(buffers[c].data(), buffers[c].data(), kCount,
                                         DataType::kF32, ReduceOp::kSum));
  }
  for (int c = kCalls - 1; c >= 0; --c) works[c]->wait();
  for (int c = 0; c < kCalls; ++c) {
    const auto bad = first_mismatch(buffers[c], 0, kCount, [&](std::size_t i) {
      return reference(ReduceOp::kSum, DataType::kF32, comm.size(), i, c);
    });
    EXPECT_FALSE(bad) << "call " << c << ": " << *bad;
  }
}

TEST(MpiCommunicator, AsyncWaitTimesOutWhenAPeerNeverCalls) {
  Options options;
  options.backend = "mpi";
  options.timeout = std::chrono::milliseconds(200);
  auto comm = make_communicator(MPI_COMM_WORLD, options);
  float value = 1.0F;
  if (comm->rank() == 0) {
    auto work = comm->allreduce_async(&value, &value, 1, DataType::kF32, ReduceOp::kSum);
    try {
      work->wait();
      ADD_FAILURE() << "wait() returned although the other ranks had not called";
    } catch (const CollectiveError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("allreduce(f32, sum, count=1) #1 on rank 0"), std::string::npos) << what;
      EXPECT_NE(what.find("did not complete within 200 ms"), std::string::npos) << what;
    }
    MPI_Barrier(MPI_COMM_WORLD);
  } else {
    MPI_Barrier(MPI_COMM_WORLD);
    // Late, so that rank 0's call can complete and the job can end cleanly.
    comm->allreduce_async(&value, &value, 1, DataType::kF32, ReduceOp::kSum)->wait();
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(MpiCommunicator, OverlappingBuffersThatAreNotInPlaceThrow) {
  Communicator& comm = world();
  std::vector<float> data(16, 1.0F);
  EXPECT_THROW(comm.allreduce(data.data(), data.data() + 1, 8, DataType::kF32, ReduceOp::kSum),
               CollectiveError);
}

TEST(MpiCommunicator, BarrierReturnsOnEveryRank) {
  world().barrier();
  world().barrier();
  SUCCEED();
}

}  // namespace
}  // namespace xpscale::collectives
