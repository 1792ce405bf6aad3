#pragma once
// The project's own random numbers. Searchers and the loader need the same
// numbers from the same seed on every machine and compiler, which the
// standard library does not promise (std::uniform_real_distribution and
// friends are implementation-defined), so the mapping from seed to numbers
// is written here: SplitMix64's finaliser as a counter-based generator.
// Counter-based means draw k of stream s depends only on (seed, s, k), so a
// trial's parameters do not depend on how many trials came before it.
#include <cstdint>

namespace xpscale {

// SplitMix64's output function (Steele, Lea, Flood 2014): a bijective mixer.
constexpr std::uint64_t mix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// 64 random bits for (seed, stream, index).
constexpr std::uint64_t random_bits(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  return mix64(mix64(mix64(seed) ^ stream) ^ index);
}

// Maps 64 random bits to a double in the open interval (0, 1): the top 52
// bits plus one half, so neither 0 nor 1 (safe for log and inverse CDFs).
// 52, not 53: (2^53 - 0.5) is not a double and would round up to 1.
constexpr double bits_to_unit(std::uint64_t bits) {
  return (static_cast<double>(bits >> 12) + 0.5) * 0x1.0p-52;
}

constexpr double random_unit(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  return bits_to_unit(random_bits(seed, stream, index));
}

// A sequential generator over one stream, for code that wants next().
class Rng {
 public:
  Rng(std::uint64_t seed, std::uint64_t stream) : seed_(seed), stream_(stream) {}
  std::uint64_t next_bits() { return random_bits(seed_, stream_, index_++); }
  double next_unit() { return bits_to_unit(next_bits()); }
  // Uniform integer in [0, n), n > 0, without modulo bias (Lemire 2019).
  std::uint64_t next_below(std::uint64_t n);

 private:
  std::uint64_t seed_, stream_, index_ = 0;
};

}  // namespace xpscale
