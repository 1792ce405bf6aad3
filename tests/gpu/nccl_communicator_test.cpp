// The NCCL backend on device memory, under mpiexec (one rank per GPU;
// tests/gpu/run.sh). Without a CUDA device every test skips and prints why,
// unless XPSCALE_REQUIRE_GPU=1 makes that a failure. Results are checked
// against the same serial reference as the MPI backend's tests.
#include <cuda_runtime_api.h>
#include <mpi.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "../mpi/collectives_test_util.h"
#include "xpscale/collectives/bucketer.h"
#include "xpscale/collectives/communicator.h"
#include "xpscale/collectives/cuda_check.h"
#include "xpscale/collectives/device.h"

namespace xpscale::collectives {
namespace {

using testing_util::Buffer;
using testing_util::input;
using testing_util::reference;

bool gpu_required() {
  const char* value = std::getenv("XPSCALE_REQUIRE_GPU");
  return value != nullptr && std::string(value) == "1";
}

// Skips (or fails under XPSCALE_REQUIRE_GPU=1) when this rank has no GPU.
#define XPSCALE_NEED_GPU()                                                                  \
  do {                                                                                      \
    if (cuda_device_count() == 0) {                                                         \
      const std::string reason = cuda_unavailable_reason();                                 \
      std::cout << "no CUDA device: " << reason << "\n";                                    \
      if (gpu_required()) FAIL() << "XPSCALE_REQUIRE_GPU=1 but no CUDA device: " << reason; \
      GTEST_SKIP() << "no CUDA device: " << reason;                                         \
    }                                                                                       \
  } while (false)

std::unique_ptr<Communicator> nccl_world() {
  Options options;
  options.backend = "nccl";
  options.timeout = std::chrono::seconds(120);
  return make_communicator(MPI_COMM_WORLD, options);
}

// A device copy of a host Buffer, and back.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(const Buffer& host) : bytes_(host.count() * data_type_size(host.type())) {
    XPSCALE_CUDA_CHECK(cudaMalloc(&data_, bytes_ + 1));
    XPSCALE_CUDA_CHECK(cudaMemcpy(data_, host.data(), bytes_, cudaMemcpyHostToDevice));
  }
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* data() { return data_; }
  void copy_to(Buffer& host) const {
    XPSCALE_CUDA_CHECK(cudaMemcpy(host.data(), data_, bytes_, cudaMemcpyDeviceToHost));
  }

 private:
  std::size_t bytes_;
  void* data_ = nullptr;
};

std::string mismatch(const Buffer& got, ReduceOp op, int size, std::size_t first = 0) {
  for (std::size_t i = 0; i < got.count(); ++i) {
    const double want = reference(op, got.type(), size, first + i);
    if (got.get(i) != want) {
      return "element " + std::to_string(i) + ": expected " + std::to_string(want) + ", got " +
             std::to_string(got.get(i));
    }
  }
  return {};
}

const DataType kTypes[] = {DataType::kF32,  DataType::kF64, DataType::kF16,
                           DataType::kBF16, DataType::kI32, DataType::kI64};
const ReduceOp kOps[] = {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMin, ReduceOp::kMax};
const std::size_t kSizes[] = {0, 1, 7, (std::size_t{1} << 20) + 3};

TEST(Nccl, AutoPicksNcclWhenThereIsAGpu) {
  XPSCALE_NEED_GPU();
  auto comm = make_communicator(MPI_COMM_WORLD);
  EXPECT_EQ(comm->backend(), "nccl");
  EXPECT_TRUE(comm->device_memory());
}

TEST(Nccl, AllreduceEveryOpDtypeAndSizeMatchesReference) {
  XPSCALE_NEED_GPU();
  auto comm = nccl_world();
  for (const DataType type : kTypes) {
    for (const ReduceOp op : kOps) {
      for (const std::size_t count : kSizes) {
        Buffer host(type, count);
        for (std::size_t i = 0; i < count; ++i) host.set(i, input(comm->rank(), i, type));
        DeviceBuffer send(host);
        DeviceBuffer recv(host);
        comm->allreduce(send.data(), recv.data(), count, type, op);                // out of place
        comm->allreduce_async(send.data(), send.data(), count, type, op)->wait();  // in place
        Buffer out(type, count);
        recv.copy_to(out);
        EXPECT_EQ(mismatch(out, op, comm->size()), "")
            << data_type_name(type) << " " << reduce_op_name(op) << " n=" << count;
        send.copy_to(out);
        EXPECT_EQ(mismatch(out, op, comm->size()), "")
            << "in place " << data_type_name(type) << " " << reduce_op_name(op) << " n=" << count;
      }
    }
  }
}

TEST(Nccl, BroadcastAllgatherReduceScatter) {
  XPSCALE_NEED_GPU();
  auto comm = nccl_world();
  const auto size = static_cast<std::size_t>(comm->size());
  const auto rank = static_cast<std::size_t>(comm->rank());
  for (const DataType type : kTypes) {
    constexpr std::size_t kCount = 1001;
    Buffer mine(type, kCount);
    for (std::size_t i = 0; i < kCount; ++i) mine.set(i, input(comm->rank(), i, type));

    DeviceBuffer buffer(mine);
    comm->broadcast(buffer.data(), kCount, type, comm->size() - 1);
    Buffer out(type, kCount);
    buffer.copy_to(out);
    for (std::size_t i = 0; i < kCount; ++i) {
      ASSERT_EQ(out.get(i), input(comm->size() - 1, i, type)) << data_type_name(type);
    }

    DeviceBuffer send(mine);
    DeviceBuffer gathered(Buffer(type, size * kCount));
    comm->allgather(send.data(), gathered.data(), kCount, type);
    Buffer all(type, size * kCount);
    gathered.copy_to(all);
    for (std::size_t i = 0; i < size * kCount; ++i) {
      ASSERT_EQ(all.get(i), input(static_cast<int>(i / kCount), i % kCount, type));
    }

    Buffer big(type, size * kCount);
    for (std::size_t i = 0; i < size * kCount; ++i) big.set(i, input(comm->rank(), i, type));
    DeviceBuffer rs_send(big);
    DeviceBuffer rs_recv(mine);
    comm->reduce_scatter(rs_send.data(), rs_recv.data(), kCount, type, ReduceOp::kSum);
    rs_recv.copy_to(out);
    EXPECT_EQ(mismatch(out, ReduceOp::kSum, comm->size(), rank * kCount), "")
        << data_type_name(type);
  }
  comm->barrier();
}

TEST(Nccl, TwoGroupsReduceAtTheSameTime) {
  XPSCALE_NEED_GPU();
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm group = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, rank % 2, rank, &group);
  {
    Options options;
    options.backend = "nccl";
    auto comm = make_communicator(group, options);
    for (int step = 0; step < 10; ++step) {
      const int salt = 100 * (rank % 2 + 1) + step;
      Buffer host(DataType::kF32, 100000);
      for (std::size_t i = 0; i < host.count(); ++i) {
        host.set(i, input(comm->rank(), i, DataType::kF32, salt));
      }
      DeviceBuffer data(host);
      comm->allreduce(data.data(), data.data(), host.count(), DataType::kF32, ReduceOp::kSum);
      data.copy_to(host);
      for (std::size_t i = 0; i < host.count(); ++i) {
        ASSERT_EQ(host.get(i), reference(ReduceOp::kSum, DataType::kF32, comm->size(), i, salt));
      }
    }
  }
  MPI_Comm_free(&group);
}

TEST(Nccl, BucketerMatchesPerTensorAllreduce) {
  XPSCALE_NEED_GPU();
  auto comm = nccl_world();
  std::vector<Buffer> hosts;
  std::vector<std::unique_ptr<DeviceBuffer>> grads;
  for (int t = 0; t < 40; ++t) {
    hosts.emplace_back(DataType::kF32, static_cast<std::size_t>(1 + 997 * t % 20000));
    for (std::size_t i = 0; i < hosts.back().count(); ++i) {
      hosts.back().set(i, input(comm->rank(), i, DataType::kF32, t));
    }
    grads.push_back(std::make_unique<DeviceBuffer>(hosts.back()));
  }
  BucketerOptions options;
  options.first_bucket_bytes = 16 * 1024;
  options.bucket_bytes = 128 * 1024;
  GradientBucketer bucketer(*comm, options);
  for (std::size_t t = 0; t < grads.size(); ++t) {
    bucketer.add(grads[t]->data(), hosts[t].count(), DataType::kF32);
  }
  for (std::size_t t = grads.size(); t-- > 0;) bucketer.mark_ready(t);
  bucketer.finish();
  for (std::size_t t = 0; t < grads.size(); ++t) {
    grads[t]->copy_to(hosts[t]);
    for (std::size_t i = 0; i < hosts[t].count(); ++i) {
      const double want = [&] {
        double sum = 0;
        for (int r = 0; r < comm->size(); ++r)
          sum += input(r, i, DataType::kF32, static_cast<int>(t));
        return static_cast<float>(sum) / static_cast<float>(comm->size());
      }();
      ASSERT_NEAR(hosts[t].get(i), want, 1e-6) << "tensor " << t << " element " << i;
    }
  }
}

}  // namespace
}  // namespace xpscale::collectives
