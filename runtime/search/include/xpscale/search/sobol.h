#pragma once
// A scrambled Sobol sequence: low-discrepancy points in (0, 1)^d.
//
// Direction numbers come from Boost.Random's sobol engine (Joe and Kuo,
// up to 3667 dimensions). Boost has no scrambling, so each dimension is
// Owen-scrambled here with the hash-based nested uniform scramble of
// Burley (2020), seeded per dimension. Owen scrambling keeps the (t,m,s)-net
// property: the first 2^m points put exactly one point in each interval
// [j/2^m, (j+1)/2^m) of every coordinate. Point i is computed directly, in
// O(d * 32), so point i does not depend on any other.
#include <cstdint>
#include <vector>

namespace xpscale {

class ScrambledSobol {
 public:
  // Throws Error if dimensions is 0 or above max_dimensions().
  ScrambledSobol(unsigned dimensions, std::uint64_t seed);
  static unsigned max_dimensions();

  unsigned dimensions() const { return dimensions_; }
  // Point `index` (0-based) of the sequence; index < 2^32.
  std::vector<double> point(std::uint64_t index) const;

 private:
  unsigned dimensions_;
  std::vector<std::uint32_t> scramble_seeds_;
};

}  // namespace xpscale
