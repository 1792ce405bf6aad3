#pragma once
// The loader's pseudo-random numbers: SplitMix64 (Steele, Lea, Flood 2014)
// with Lemire's unbiased bounded draw, so that a (seed, stream) pair gives
// the same shard order and shuffle on every machine and compiler.
//
// Defined here rather than taken from the runtime's rng.h because sharding
// must not depend on the runtime (design.md, "Layout"), and not taken from
// <random> because std::uniform_int_distribution is not specified bit for
// bit, so two standard libraries would shuffle differently.
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>

namespace xpscale {

class Prng {
 public:
  explicit Prng(std::uint64_t seed) : state_(seed) {}

  // The next 64 random bits.
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  // Uniform in [0, n); n > 0. Lemire's multiply-and-reject method.
  std::uint64_t below(std::uint64_t n);

  // Fisher-Yates, from the last element down.
  template <class T>
  void shuffle(std::span<T> items) {
    for (std::size_t i = items.size(); i > 1; --i) {
      using std::swap;
      swap(items[i - 1], items[static_cast<std::size_t>(below(i))]);
    }
  }

 private:
  std::uint64_t state_;
};

// A 64-bit seed mixed from its parts (FNV-1a over the bytes of `label`,
// then SplitMix64 steps over the numbers), so that independent streams
// (shard order, shuffle buffer of rank r) get unrelated sequences.
std::uint64_t mix_seed(std::string_view label, std::span<const std::uint64_t> parts);

}  // namespace xpscale
