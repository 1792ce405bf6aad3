#pragma once
// A Communicator over threads of one process, for unit tests of the
// data-parallel trainer without MPI: a ThreadGroup of k ranks, one thread
// per rank. Implements what the trainer and GradientBucketer use
// (allreduce, broadcast, barrier); the other collectives throw.
#include <barrier>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "xpscale/collectives/communicator.h"

namespace fmnist_test {

namespace xc = xpscale::collectives;

struct ThreadGroup {
  explicit ThreadGroup(int n) : size(n), sync(n), sends(n), recvs(n) {}
  int size;
  std::barrier<> sync;
  std::vector<const void*> sends;
  std::vector<void*> recvs;
};

class ThreadComm final : public xc::Communicator {
 public:
  ThreadComm(ThreadGroup& group, int rank) : group_(group), rank_(rank) {}

  int rank() const override { return rank_; }
  int size() const override { return group_.size; }
  std::string_view backend() const override { return "threads"; }
  bool device_memory() const override { return false; }

  void allreduce(const void* send, void* recv, std::size_t count, xc::DataType type,
                 xc::ReduceOp op) override {
    switch (type) {
      case xc::DataType::kF32:
        return reduce<float>(send, recv, count, op);
      case xc::DataType::kF64:
        return reduce<double>(send, recv, count, op);
      case xc::DataType::kI32:
        return reduce<std::int32_t>(send, recv, count, op);
      case xc::DataType::kI64:
        return reduce<std::int64_t>(send, recv, count, op);
      default:
        throw std::logic_error("ThreadComm: unsupported dtype");
    }
  }
  std::unique_ptr<xc::Work> allreduce_async(const void* send, void* recv, std::size_t count,
                                            xc::DataType type, xc::ReduceOp op) override {
    allreduce(send, recv, count, type, op);
    return std::make_unique<Done>();
  }
  void broadcast(void* buffer, std::size_t count, xc::DataType type, int root) override {
    group_.recvs[rank_] = buffer;
    group_.sync.arrive_and_wait();
    if (rank_ != root) std::memcpy(buffer, group_.recvs[root], count * xc::data_type_size(type));
    group_.sync.arrive_and_wait();
  }
  std::unique_ptr<xc::Work> broadcast_async(void* buffer, std::size_t count, xc::DataType type,
                                            int root) override {
    broadcast(buffer, count, type, root);
    return std::make_unique<Done>();
  }
  void allgather(const void*, void*, std::size_t, xc::DataType) override { unsupported(); }
  std::unique_ptr<xc::Work> allgather_async(const void*, void*, std::size_t,
                                            xc::DataType) override {
    unsupported();
  }
  void reduce_scatter(const void*, void*, std::size_t, xc::DataType, xc::ReduceOp) override {
    unsupported();
  }
  std::unique_ptr<xc::Work> reduce_scatter_async(const void*, void*, std::size_t, xc::DataType,
                                                 xc::ReduceOp) override {
    unsupported();
  }
  void barrier() override { group_.sync.arrive_and_wait(); }

 private:
  struct Done final : xc::Work {
    void wait() override {}
    bool test() override { return true; }
  };
  [[noreturn]] static void unsupported() {
    throw std::logic_error("ThreadComm: collective not implemented by the test fake");
  }

  // Publish, reduce every rank's input into a private result, wait until
  // nobody reads inputs any more (in-place calls overwrite them), write.
  template <class T>
  void reduce(const void* send, void* recv, std::size_t count, xc::ReduceOp op) {
    group_.sends[rank_] = send;
    group_.sync.arrive_and_wait();
    std::vector<T> out(static_cast<const T*>(group_.sends[0]),
                       static_cast<const T*>(group_.sends[0]) + count);
    for (int r = 1; r < group_.size; ++r) {
      const T* in = static_cast<const T*>(group_.sends[r]);
      for (std::size_t i = 0; i < count; ++i) {
        switch (op) {
          case xc::ReduceOp::kSum:
          case xc::ReduceOp::kAvg:
            out[i] += in[i];
            break;
          case xc::ReduceOp::kMin:
            out[i] = std::min(out[i], in[i]);
            break;
          case xc::ReduceOp::kMax:
            out[i] = std::max(out[i], in[i]);
            break;
        }
      }
    }
    if (op == xc::ReduceOp::kAvg) {
      for (auto& v : out) v /= static_cast<T>(group_.size);
    }
    group_.sync.arrive_and_wait();
    std::memcpy(recv, out.data(), count * sizeof(T));
  }

  ThreadGroup& group_;
  int rank_;
};

// Runs fn(comm) on `ranks` threads, one ThreadComm each; rethrows the first
// exception.
inline void run_group(int ranks, const std::function<void(xc::Communicator&)>& fn) {
  ThreadGroup group(ranks);
  std::vector<std::exception_ptr> errors(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      ThreadComm comm(group, r);
      try {
        fn(comm);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace fmnist_test
