#include <string_view>

#include "usage_error.h"
#include "xpscale/collectives/communicator.h"

namespace xpscale::collectives {

std::string_view data_type_name(DataType t) {
  switch (t) {
    case DataType::kF32:
      return "f32";
    case DataType::kF64:
      return "f64";
    case DataType::kF16:
      return "f16";
    case DataType::kBF16:
      return "bf16";
    case DataType::kI32:
      return "i32";
    case DataType::kI64:
      return "i64";
  }
  return "unknown";
}

std::string_view reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kAvg:
      return "avg";
    case ReduceOp::kMin:
      return "min";
    case ReduceOp::kMax:
      return "max";
  }
  return "unknown";
}

std::size_t data_type_size(DataType t) {
  switch (t) {
    case DataType::kF32:
    case DataType::kI32:
      return 4;
    case DataType::kF64:
    case DataType::kI64:
      return 8;
    case DataType::kF16:
    case DataType::kBF16:
      return 2;
  }
  detail::throw_usage_error("data_type_size",
                            "not a DataType: " + std::to_string(static_cast<int>(t)));
}

}  // namespace xpscale::collectives
