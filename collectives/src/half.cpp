// Eigen's half and bfloat16 do the rounding (to nearest even, with
// subnormals and NaNs handled); Eigen is already a dependency of the build.
#include "xpscale/collectives/half.h"

#include <Eigen/Core>

namespace xpscale::collectives {

std::uint16_t float_to_f16(float value) {
  return Eigen::numext::bit_cast<std::uint16_t>(Eigen::half(value));
}

float f16_to_float(std::uint16_t bits) {
  return static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(bits));
}

std::uint16_t float_to_bf16(float value) {
  return Eigen::numext::bit_cast<std::uint16_t>(Eigen::bfloat16(value));
}

float bf16_to_float(std::uint16_t bits) {
  return static_cast<float>(Eigen::numext::bit_cast<Eigen::bfloat16>(bits));
}

}  // namespace xpscale::collectives
