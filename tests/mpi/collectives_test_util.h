#pragma once
// Typed host buffers and a serial reference for the collectives tests. The
// inputs are small multiples of 1/4 (integers for integer types), so every
// partial sum over up to 4 ranks is exact in every dtype, f16 and bf16
// included: the reference then predicts each result bit for bit, whatever
// order MPI reduces in.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "xpscale/collectives/communicator.h"
#include "xpscale/collectives/half.h"

namespace xpscale::collectives::testing_util {

inline bool is_float(DataType t) {
  return t == DataType::kF32 || t == DataType::kF64 || t == DataType::kF16 || t == DataType::kBF16;
}

// A host buffer of count elements of type.
class Buffer {
 public:
  Buffer(DataType type, std::size_t count)
      : type_(type), count_(count), bytes_(count * data_type_size(type) + 1) {}

  void* data() { return bytes_.data(); }
  const void* data() const { return bytes_.data(); }
  std::byte* at(std::size_t i) { return bytes_.data() + i * data_type_size(type_); }
  std::size_t count() const { return count_; }
  DataType type() const { return type_; }

  void set(std::size_t i, double v) {
    std::byte* p = at(i);
    switch (type_) {
      case DataType::kF32: {
        const float x = static_cast<float>(v);
        std::memcpy(p, &x, 4);
        break;
      }
      case DataType::kF64:
        std::memcpy(p, &v, 8);
        break;
      case DataType::kF16: {
        const std::uint16_t x = float_to_f16(static_cast<float>(v));
        std::memcpy(p, &x, 2);
        break;
      }
      case DataType::kBF16: {
        const std::uint16_t x = float_to_bf16(static_cast<float>(v));
        std::memcpy(p, &x, 2);
        break;
      }
      case DataType::kI32: {
        const auto x = static_cast<std::int32_t>(v);
        std::memcpy(p, &x, 4);
        break;
      }
      case DataType::kI64: {
        const auto x = static_cast<std::int64_t>(v);
        std::memcpy(p, &x, 8);
        break;
      }
    }
  }

  double get(std::size_t i) const {
    const std::byte* p = bytes_.data() + i * data_type_size(type_);
    switch (type_) {
      case DataType::kF32: {
        float x;
        std::memcpy(&x, p, 4);
        return x;
      }
      case DataType::kF64: {
        double x;
        std::memcpy(&x, p, 8);
        return x;
      }
      case DataType::kF16: {
        std::uint16_t x;
        std::memcpy(&x, p, 2);
        return f16_to_float(x);
      }
      case DataType::kBF16: {
        std::uint16_t x;
        std::memcpy(&x, p, 2);
        return bf16_to_float(x);
      }
      case DataType::kI32: {
        std::int32_t x;
        std::memcpy(&x, p, 4);
        return x;
      }
      case DataType::kI64: {
        std::int64_t x;
        std::memcpy(&x, p, 8);
        return static_cast<double>(x);
      }
    }
    return 0;
  }

 private:
  DataType type_;
  std::size_t count_;
  std::vector<std::byte> bytes_;  // +1 so that data() is never null
};

// Rank r's input element i: in [-8, 8] (times 1/4 for floating types), with
// negative values so that integer avg must truncate toward zero.
inline double input(int rank, std::size_t i, DataType type, int salt = 0) {
  const auto k =
      static_cast<double>(
          (static_cast<std::size_t>(rank) * 7 + i * 3 + static_cast<std::size_t>(salt) * 5) % 17) -
      8.0;
  return is_float(type) ? k * 0.25 : k;
}

// What op over ranks 0..size-1 of input(r, i) must give, rounded as the
// communicator rounds (avg: exact sum, then divide in the type's precision).
inline double reference(ReduceOp op, DataType type, int size, std::size_t i, int salt = 0) {
  double sum = 0;
  double lo = input(0, i, type, salt);
  double hi = lo;
  for (int r = 0; r < size; ++r) {
    const double v = input(r, i, type, salt);
    sum += v;
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  switch (op) {
    case ReduceOp::kSum:
      return sum;
    case ReduceOp::kMin:
      return lo;
    case ReduceOp::kMax:
      return hi;
    case ReduceOp::kAvg:
      break;
  }
  switch (type) {
    case DataType::kF32:
      return static_cast<float>(sum) / static_cast<float>(size);
    case DataType::kF64:
      return sum / size;
    case DataType::kF16:
      return f16_to_float(float_to_f16(static_cast<float>(sum) / static_cast<float>(size)));
    case DataType::kBF16:
      return bf16_to_float(float_to_bf16(static_cast<float>(sum) / static_cast<float>(size)));
    case DataType::kI32:
    case DataType::kI64:
      return static_cast<double>(static_cast<std::int64_t>(sum) / size);  // toward zero
  }
  return 0;
}

}  // namespace xpscale::collectives::testing_util
