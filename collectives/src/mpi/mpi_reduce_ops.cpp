#include "mpi/mpi_reduce_ops.h"

#include <Eigen/Core>

#include <cstdint>

#include "usage_error.h"
#include "xpscale/collectives/mpi_check.h"

namespace xpscale::collectives::detail {

namespace {

// MPI_User_function for 16-bit floats T (Eigen::half or Eigen::bfloat16):
// inout[i] = reduce(in[i], inout[i]), computed in float. The words are
// reinterpreted as T: both Eigen types are a single uint16_t, so the bytes
// are exactly the f16/bf16 encoding.
template <class T, class Reduce>
void reduce_16bit(void* in, void* inout, int* len, MPI_Datatype* /*type*/) {
  static_assert(sizeof(T) == sizeof(std::uint16_t));
  const T* a = static_cast<const T*>(in);
  T* b = static_cast<T*>(inout);
  const Reduce reduce;
  for (int i = 0; i < *len; ++i) {
    b[i] = T(reduce(static_cast<float>(a[i]), static_cast<float>(b[i])));
  }
}

struct Plus {
  float operator()(float a, float b) const { return a + b; }
};
// NaN in either operand wins, like torch.minimum/maximum and NCCL.
struct Min {
  float operator()(float a, float b) const { return a != a ? a : (b != b || b < a ? b : a); }
};
struct Max {
  float operator()(float a, float b) const { return a != a ? a : (b != b || b > a ? b : a); }
};

// The six user-defined ops. Commutative: a + b == b + a holds for the
// rounded float sum too, which lets MPI pick its faster algorithms.
struct HalfOps {
  MPI_Op f16[3] = {MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL};  // sum, min, max
  MPI_Op bf16[3] = {MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL};

  HalfOps() {
    XPSCALE_MPI_CHECK(MPI_Op_create(&reduce_16bit<Eigen::half, Plus>, 1, &f16[0]));
    XPSCALE_MPI_CHECK(MPI_Op_create(&reduce_16bit<Eigen::half, Min>, 1, &f16[1]));
    XPSCALE_MPI_CHECK(MPI_Op_create(&reduce_16bit<Eigen::half, Max>, 1, &f16[2]));
    XPSCALE_MPI_CHECK(MPI_Op_create(&reduce_16bit<Eigen::bfloat16, Plus>, 1, &bf16[0]));
    XPSCALE_MPI_CHECK(MPI_Op_create(&reduce_16bit<Eigen::bfloat16, Min>, 1, &bf16[1]));
    XPSCALE_MPI_CHECK(MPI_Op_create(&reduce_16bit<Eigen::bfloat16, Max>, 1, &bf16[2]));
  }
};

const HalfOps& half_ops() {
  // Created once (thread-safe static init); never freed: MPI_Finalize
  // releases them, and freeing earlier would race with other communicators.
  static const HalfOps ops;
  return ops;
}

int op_index(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      return 0;
    case ReduceOp::kMin:
      return 1;
    case ReduceOp::kMax:
      return 2;
  }
  throw_usage_error("mpi_op", "not a ReduceOp: " + std::to_string(static_cast<int>(op)));
}

template <class T>
void divide_integers(void* data, std::size_t count, int divisor) {
  T* v = static_cast<T*>(data);
  const T d = static_cast<T>(divisor);
  for (std::size_t i = 0; i < count; ++i) v[i] /= d;
}

template <class T>
void divide_floats(void* data, std::size_t count, int divisor) {
  T* v = static_cast<T*>(data);
  const T d = static_cast<T>(divisor);
  for (std::size_t i = 0; i < count; ++i) v[i] = v[i] / d;
}

template <class T>
void divide_16bit(void* data, std::size_t count, int divisor) {
  T* v = static_cast<T*>(data);
  const float d = static_cast<float>(divisor);
  for (std::size_t i = 0; i < count; ++i) v[i] = T(static_cast<float>(v[i]) / d);
}

}  // namespace

MPI_Datatype mpi_datatype(DataType type) {
  switch (type) {
    case DataType::kF32:
      return MPI_FLOAT;
    case DataType::kF64:
      return MPI_DOUBLE;
    case DataType::kF16:
    case DataType::kBF16:
      return MPI_UINT16_T;
    case DataType::kI32:
      return MPI_INT32_T;
    case DataType::kI64:
      return MPI_INT64_T;
  }
  throw_usage_error("mpi_datatype", "not a DataType: " + std::to_string(static_cast<int>(type)));
}

MPI_Op mpi_op(DataType type, ReduceOp op) {
  if (type == DataType::kF16) return half_ops().f16[op_index(op)];
  if (type == DataType::kBF16) return half_ops().bf16[op_index(op)];
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      return MPI_SUM;
    case ReduceOp::kMin:
      return MPI_MIN;
    case ReduceOp::kMax:
      return MPI_MAX;
  }
  throw_usage_error("mpi_op", "not a ReduceOp: " + std::to_string(static_cast<int>(op)));
}

void divide_in_place(void* data, std::size_t count, DataType type, int divisor) {
  switch (type) {
    case DataType::kF32:
      return divide_floats<float>(data, count, divisor);
    case DataType::kF64:
      return divide_floats<double>(data, count, divisor);
    case DataType::kF16:
      return divide_16bit<Eigen::half>(data, count, divisor);
    case DataType::kBF16:
      return divide_16bit<Eigen::bfloat16>(data, count, divisor);
    case DataType::kI32:
      return divide_integers<std::int32_t>(data, count, divisor);
    case DataType::kI64:
      return divide_integers<std::int64_t>(data, count, divisor);
  }
}

}  // namespace xpscale::collectives::detail
