#include "xpscale/sharding/brace.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "xpscale/sharding/error.h"

namespace xpscale {
namespace {

using Strings = std::vector<std::string>;

// The message of the ShardingError that expand_braces throws; fails the
// test when it throws nothing.
std::string error_of(std::string_view pattern, std::size_t max_results = 1'000'000) {
  try {
    expand_braces(pattern, max_results);
  } catch (const ShardingError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expand_braces(\"" << pattern << "\") did not throw";
  return {};
}

// True when message names the pattern and the offset.
testing::AssertionResult names(const std::string& message, std::string_view pattern,
                               std::size_t offset) {
  if (message.find("\"" + std::string(pattern) + "\"") == std::string::npos ||
      message.find("at offset " + std::to_string(offset) + ":") == std::string::npos) {
    return testing::AssertionFailure() << "message \"" << message << "\" does not name \""
                                       << pattern << "\" at offset " << offset;
  }
  return testing::AssertionSuccess();
}

TEST(ExpandBraces, PatternWithoutGroupsYieldsItself) {
  EXPECT_EQ(expand_braces("s3://b/x.tar"), Strings{"s3://b/x.tar"});
  EXPECT_EQ(expand_braces(""), Strings{""});
}

TEST(ExpandBraces, ZeroPaddedRangeKeepsWidth) {
  const Strings shards = expand_braces("train-{000000..000015}.tar");
  ASSERT_EQ(shards.size(), 16u);
  EXPECT_EQ(shards.front(), "train-000000.tar");
  EXPECT_EQ(shards[9], "train-000009.tar");
  EXPECT_EQ(shards.back(), "train-000015.tar");
}

TEST(ExpandBraces, PaddingComesFromTheWiderBound) {
  EXPECT_EQ(expand_braces("{8..010}"), (Strings{"008", "009", "010"}));
  EXPECT_EQ(expand_braces("{08..10}"), (Strings{"08", "09", "10"}));
}

TEST(ExpandBraces, UnpaddedRangeHasNoPadding) {
  EXPECT_EQ(expand_braces("{8..11}"), (Strings{"8", "9", "10", "11"}));
  EXPECT_EQ(expand_braces("{0..2}"), (Strings{"0", "1", "2"}));
}

TEST(ExpandBraces, DescendingRange) {
  EXPECT_EQ(expand_braces("{03..00}"), (Strings{"03", "02", "01", "00"}));
}

TEST(ExpandBraces, SingleValueRangeIsFixedText) {
  EXPECT_EQ(expand_braces("a{7..7}b"), Strings{"a7b"});
}

TEST(ExpandBraces, ListKeepsItemsVerbatimIncludingEmptyOnes) {
  EXPECT_EQ(expand_braces("x{a,b,c}"), (Strings{"xa", "xb", "xc"}));
  EXPECT_EQ(expand_braces("f{,.bak}"), (Strings{"f", "f.bak"}));
  EXPECT_EQ(expand_braces("{1..2,x}"), (Strings{"1..2", "x"}));
}

TEST(ExpandBraces, SeveralGroupsAreACartesianProductLeftmostSlowest) {
  EXPECT_EQ(expand_braces("{train,val}-{0..1}-{a,b}"),
            (Strings{"train-0-a", "train-0-b", "train-1-a", "train-1-b", "val-0-a", "val-0-b",
                     "val-1-a", "val-1-b"}));
}

TEST(ExpandBraces, LargestUnsignedBoundWorks) {
  EXPECT_EQ(expand_braces("{18446744073709551614..18446744073709551615}"),
            (Strings{"18446744073709551614", "18446744073709551615"}));
}

TEST(ExpandBraces, UnbalancedOpenBraceNamesItsOffset) {
  EXPECT_TRUE(names(error_of("ab{0..3"), "ab{0..3", 2));
}

TEST(ExpandBraces, UnbalancedCloseBraceNamesItsOffset) {
  EXPECT_TRUE(names(error_of("a{0..1}b}"), "a{0..1}b}", 8));
}

TEST(ExpandBraces, NestedGroupIsAnError) {
  EXPECT_TRUE(names(error_of("{a,{b,c}}"), "{a,{b,c}}", 3));
}

TEST(ExpandBraces, GroupWithoutCommaOrDotsIsAnError) {
  EXPECT_TRUE(names(error_of("x{abc}"), "x{abc}", 1));
  EXPECT_TRUE(names(error_of("{}"), "{}", 0));
}

TEST(ExpandBraces, EmptyRangeBoundNamesTheBound) {
  EXPECT_TRUE(names(error_of("s{..5}"), "s{..5}", 2));
  EXPECT_TRUE(names(error_of("s{5..}"), "s{5..}", 5));
}

TEST(ExpandBraces, NonNumericRangeIsAnError) {
  const std::string message = error_of("{a..e}");
  EXPECT_TRUE(names(message, "{a..e}", 1));
  EXPECT_NE(message.find("not a non-negative integer"), std::string::npos) << message;
  EXPECT_TRUE(names(error_of("{-1..2}"), "{-1..2}", 1));
  EXPECT_TRUE(names(error_of("{1..9..2}"), "{1..9..2}", 4));  // no step syntax
}

TEST(ExpandBraces, OverflowingBoundIsAnError) {
  const std::string message = error_of("{0..18446744073709551616}");
  EXPECT_TRUE(names(message, "{0..18446744073709551616}", 4));
  EXPECT_NE(message.find("larger than 2^64-1"), std::string::npos) << message;
}

TEST(ExpandBraces, MoreThanMaxResultsIsAnError) {
  EXPECT_EQ(expand_braces("{1..4}", 4).size(), 4u);
  EXPECT_TRUE(names(error_of("{1..5}", 4), "{1..5}", 0));
  EXPECT_TRUE(names(error_of("{a,b}{1..3}", 5), "{a,b}{1..3}", 5));
  EXPECT_TRUE(names(error_of("{0..18446744073709551615}"), "{0..18446744073709551615}", 0));
  EXPECT_TRUE(names(error_of("x", 0), "x", 0));
}

TEST(ExpandBraces, HugeProductsAreRefusedWithoutOverflow) {
  std::string pattern;
  for (int i = 0; i < 70; ++i) pattern += "{a,b}";  // 2^70 results
  EXPECT_NE(error_of(pattern, SIZE_MAX).find("results"), std::string::npos);
}

TEST(ExpandBraces, MemoryCapHoldsEvenWithUnlimitedResults) {
  std::string pattern;
  for (int i = 0; i < 30; ++i) pattern += "{,}";  // 2^30 empty strings
  EXPECT_NE(error_of(pattern, SIZE_MAX).find("MiB"), std::string::npos);
  // Long results hit the byte count during generation, not the upfront check.
  const std::string wide = std::string(1 << 12, 'x') + "{0..99999}";
  EXPECT_NE(error_of(wide, SIZE_MAX).find("MiB"), std::string::npos);
}

}  // namespace
}  // namespace xpscale
