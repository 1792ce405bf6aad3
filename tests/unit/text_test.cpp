#include <gtest/gtest.h>

#include "xpscale/core/text.h"

namespace xpscale {
namespace {

TEST(Text, EditDistance) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("grid", "gird"), 1u);  // a swap counts once
  EXPECT_EQ(edit_distance("distrbution", "distribution"), 1u);
  EXPECT_EQ(edit_distance("abc", "xyz"), 3u);
}

TEST(Text, NearestOnlyForLikelyTypos) {
  const std::vector<std::string> keys = {"min", "max", "values", "distribution"};
  EXPECT_EQ(nearest("valeus", keys), "values");
  EXPECT_EQ(nearest("mni", keys), "min");
  EXPECT_FALSE(nearest("completely_different", keys));
  EXPECT_FALSE(nearest("values", keys));  // exact: nothing to suggest
}

TEST(Text, QuotedList) {
  EXPECT_EQ(quoted_list({"a"}), "'a'");
  EXPECT_EQ(quoted_list({"a", "b", "c"}), "'a', 'b' or 'c'");
}

}  // namespace
}  // namespace xpscale
