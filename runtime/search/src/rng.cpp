#include "xpscale/search/rng.h"

namespace xpscale {

std::uint64_t Rng::next_below(std::uint64_t n) {
  // Rejection sampling: drop the lowest (2^64 mod n) outcomes so every
  // residue is equally likely. Defined here, so the same everywhere.
  const std::uint64_t threshold = (0 - n) % n;
  std::uint64_t bits = next_bits();
  while (bits < threshold) bits = next_bits();
  return bits % n;
}

}  // namespace xpscale
