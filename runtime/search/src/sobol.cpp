#include "xpscale/search/sobol.h"

#include <optional>

#include <boost/random/sobol.hpp>

#include "xpscale/core/error.h"
#include "xpscale/search/rng.h"

namespace xpscale {
namespace {

using SobolEngine = boost::random::sobol_engine<std::uint32_t, 32>;

std::uint32_t reverse_bits(std::uint32_t x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
  return (x >> 16) | (x << 16);
}

// Laine-Karras style hash, with Burley's (2020) constants: flips each bit
// depending only on the bits below it, which on bit-reversed input is an
// Owen (nested uniform) scramble of the original digits.
std::uint32_t owen_permutation(std::uint32_t x, std::uint32_t seed) {
  x += seed;
  x ^= x * 0x6c50b47cu;
  x ^= x * 0xb82f1e52u;
  x ^= x * 0xc7afe638u;
  x ^= x * 0x8d22f6e6u;
  return x;
}

std::uint32_t owen_scramble(std::uint32_t x, std::uint32_t seed) {
  return reverse_bits(owen_permutation(reverse_bits(x), seed));
}

}  // namespace

unsigned ScrambledSobol::max_dimensions() {
  return static_cast<unsigned>(boost::random::default_sobol_table::max_dimension);
}

ScrambledSobol::ScrambledSobol(unsigned dimensions, std::uint64_t seed) : dimensions_(dimensions) {
  if (dimensions == 0 || dimensions > max_dimensions())
    throw Error("Sobol sequence: " + std::to_string(dimensions) +
                " dimensions requested; supported: 1 to " + std::to_string(max_dimensions()));
  scramble_seeds_.reserve(dimensions);
  for (unsigned d = 0; d < dimensions; ++d)
    scramble_seeds_.push_back(static_cast<std::uint32_t>(random_bits(seed, 0x50b01, d)));
}

std::vector<double> ScrambledSobol::point(std::uint64_t index) const {
  if (index >= (std::uint64_t{1} << 32))
    throw Error("Sobol sequence: point " + std::to_string(index) + " is past 2^32");
  // Boost's engine starts at the sequence's second point (the first is the
  // origin), so its position i - 1 is point i.
  std::optional<SobolEngine> engine;
  if (index > 0) {
    engine.emplace(dimensions_);
    engine->seed(static_cast<std::uint32_t>(index - 1));
  }
  std::vector<double> out(dimensions_);
  for (unsigned d = 0; d < dimensions_; ++d) {
    const std::uint32_t raw = engine ? (*engine)() : 0;
    const std::uint32_t x = owen_scramble(raw, scramble_seeds_[d]);
    // The centre of the 2^-32 cell: never exactly 0 or 1.
    out[d] = (static_cast<double>(x) + 0.5) * 0x1.0p-32;
  }
  return out;
}

}  // namespace xpscale
