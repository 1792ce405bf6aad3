#include "xpscale/sharding/prng.h"

namespace xpscale {

namespace {
// __extension__ keeps -Wpedantic quiet about the GCC/Clang 128-bit type.
__extension__ typedef unsigned __int128 U128;
}  // namespace

std::uint64_t Prng::below(std::uint64_t n) {
  // 128-bit product: the high half is uniform in [0, n) once the low half
  // lands outside the biased zone [0, 2^64 mod n).
  U128 m = static_cast<U128>(next()) * n;
  auto low = static_cast<std::uint64_t>(m);
  if (low < n) {
    const std::uint64_t threshold = (0 - n) % n;
    while (low < threshold) {
      m = static_cast<U128>(next()) * n;
      low = static_cast<std::uint64_t>(m);
    }
  }
  return static_cast<std::uint64_t>(m >> 64);
}

std::uint64_t mix_seed(std::string_view label, std::span<const std::uint64_t> parts) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : label) h = (h ^ c) * 0x100000001b3ull;
  for (std::uint64_t p : parts) {
    Prng step(h ^ p);
    h = step.next();
  }
  return h;
}

}  // namespace xpscale
