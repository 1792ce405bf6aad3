#pragma once
// f16 (IEEE 754 binary16) and bf16 (bfloat16) values as the collectives see
// them: 16-bit patterns in memory. Conversions round to nearest, ties to
// even, keep infinities and turn NaNs into quiet NaNs. For filling and
// reading DataType::kF16 / kBF16 buffers on the host.
#include <cstdint>

namespace xpscale::collectives {

std::uint16_t float_to_f16(float value);
float f16_to_float(std::uint16_t bits);
std::uint16_t float_to_bf16(float value);
float bf16_to_float(std::uint16_t bits);

}  // namespace xpscale::collectives
