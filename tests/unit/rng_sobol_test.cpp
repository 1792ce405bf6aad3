// The project's PRNG and the scrambled Sobol sequence.
#include <set>

#include <gtest/gtest.h>
#include <boost/random/sobol.hpp>

#include "test_util.h"
#include "xpscale/core/error.h"
#include "xpscale/search/rng.h"
#include "xpscale/search/sobol.h"

namespace xpscale {
namespace {

TEST(Rng, MatchesSplitMix64ReferenceOutputs) {
  // SplitMix64 from state 0 yields 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4,
  // 0x06c45d188009454f: fixed numbers, the same on every machine.
  EXPECT_EQ(mix64(0), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(mix64(0x9e3779b97f4a7c15ULL), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(mix64(2 * 0x9e3779b97f4a7c15ULL), 0x06c45d188009454fULL);
}

TEST(Rng, UnitsAreStrictlyInsideZeroOne) {
  EXPECT_GT(bits_to_unit(0), 0.0);
  EXPECT_LT(bits_to_unit(~0ULL), 1.0);
}

TEST(Rng, StreamsAndSeedsDiffer) {
  std::set<std::uint64_t> seen;
  for (std::uint64_t seed = 0; seed < 4; ++seed)
    for (std::uint64_t stream = 0; stream < 4; ++stream)
      for (std::uint64_t i = 0; i < 64; ++i) seen.insert(random_bits(seed, stream, i));
  EXPECT_EQ(seen.size(), 4u * 4u * 64u);
}

TEST(Rng, UnitsAreUniform) {
  std::vector<double> xs;
  Rng rng(42, 7);
  for (int i = 0; i < 10000; ++i) xs.push_back(rng.next_unit());
  EXPECT_LT(test::ks_statistic(xs, [](double x) { return x; }), test::ks_critical(xs.size()));
}

TEST(Rng, NextBelowIsUnbiased) {
  Rng rng(1, 1);
  std::vector<double> counts(6, 0);
  for (int i = 0; i < 60000; ++i) counts[rng.next_below(6)] += 1;
  EXPECT_LT(test::chi_square(counts, std::vector<double>(6, 1.0 / 6)), 20.52);  // df 5, p 0.001
}

TEST(Sobol, EachPrefixOfPowerOfTwoLengthIsStratifiedInEveryDimension) {
  // Owen scrambling keeps the net property: the first 2^m points put exactly
  // one point in each of the 2^m equal intervals of every coordinate.
  const ScrambledSobol sobol(6, 12345);
  for (int m = 1; m <= 10; ++m) {
    const std::uint64_t n = std::uint64_t{1} << m;
    for (unsigned d = 0; d < 6; ++d) {
      std::vector<int> cells(n, 0);
      for (std::uint64_t i = 0; i < n; ++i)
        cells[static_cast<std::size_t>(sobol.point(i)[d] * static_cast<double>(n))]++;
      for (std::uint64_t c = 0; c < n; ++c)
        ASSERT_EQ(cells[c], 1) << "m=" << m << " dim=" << d << " cell=" << c;
    }
  }
}

TEST(Sobol, TwoDimensionalNetProperty) {
  // Dimensions 0 and 1 of Sobol form a (0,m,2)-net: with 2^m points, every
  // elementary box of area 2^-m (2^a by 2^(m-a) cells) holds exactly one.
  const ScrambledSobol sobol(2, 99);
  const int m = 8;
  const std::uint64_t n = 1u << m;
  for (int a = 0; a <= m; ++a) {
    const std::uint64_t nx = 1u << a, ny = 1u << (m - a);
    std::vector<int> boxes(n, 0);
    for (std::uint64_t i = 0; i < n; ++i) {
      const auto p = sobol.point(i);
      boxes[static_cast<std::size_t>(p[0] * static_cast<double>(nx)) * ny +
            static_cast<std::size_t>(p[1] * static_cast<double>(ny))]++;
    }
    for (int count : boxes) ASSERT_EQ(count, 1) << "a=" << a;
  }
}

TEST(Sobol, ScramblingDependsOnTheSeedAndIsReproducible) {
  const ScrambledSobol a(3, 1), b(3, 1), c(3, 2);
  for (std::uint64_t i = 0; i < 16; ++i) {
    EXPECT_EQ(a.point(i), b.point(i));
    EXPECT_NE(a.point(i), c.point(i));
  }
  // Point 0 of an unscrambled Sobol sequence is the origin; scrambled, not.
  EXPECT_GT(a.point(0)[0], 0.0);
}

TEST(Sobol, PointsAreUniformAndInsideTheOpenCube) {
  const ScrambledSobol s(4, 5);
  std::vector<double> xs;
  for (std::uint64_t i = 0; i < 4096; ++i) {
    for (double u : s.point(i)) {
      ASSERT_GT(u, 0.0);
      ASSERT_LT(u, 1.0);
    }
    xs.push_back(s.point(i)[3]);
  }
  EXPECT_LT(test::ks_statistic(xs, [](double x) { return x; }), test::ks_critical(xs.size()));
}

TEST(Sobol, RandomAccessMatchesSequentialBoost) {
  // point(i) seeks; it must agree with stepping Boost's engine in order
  // (before scrambling, compared through the stratification of one cell).
  boost::random::sobol_engine<std::uint32_t, 32> engine(2);
  boost::random::sobol_engine<std::uint32_t, 32> seeked(2);
  for (std::uint32_t i = 0; i < 100; ++i) {
    const std::uint32_t x0 = engine(), x1 = engine();
    seeked.seed(i);
    ASSERT_EQ(seeked(), x0) << i;
    ASSERT_EQ(seeked(), x1) << i;
  }
}

TEST(Sobol, DimensionLimits) {
  EXPECT_THROW(ScrambledSobol(0, 1), Error);
  EXPECT_THROW(ScrambledSobol(ScrambledSobol::max_dimensions() + 1, 1), Error);
  EXPECT_GE(ScrambledSobol::max_dimensions(), 1000u);
}

}  // namespace
}  // namespace xpscale
