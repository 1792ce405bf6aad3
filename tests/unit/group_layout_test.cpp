#include <gtest/gtest.h>

#include "xpscale/coordinator/groups.h"
#include "xpscale/core/error.h"

namespace xpscale {
namespace {

using Members = std::vector<std::vector<int>>;

TEST(GroupLayout, OneNodeSplitsInRankOrder) {
  auto l = assign_groups({"a", "a", "a", "a"}, 2);
  EXPECT_EQ(l.members, (Members{{0, 1}, {2, 3}}));
  EXPECT_EQ(l.group_of_rank, (std::vector<int>{0, 0, 1, 1}));
  EXPECT_TRUE(l.idle.empty());
}

TEST(GroupLayout, GroupsStayWithinANodeWhenTheyFit) {
  // Round-robin placement (rank r on node r % 2): groups must not follow rank order.
  auto l = assign_groups({"a", "b", "a", "b", "a", "b", "a", "b"}, 2);
  EXPECT_EQ(l.members, (Members{{0, 2}, {4, 6}, {1, 3}, {5, 7}}));
}

TEST(GroupLayout, LeftoversOfNodesArePooledAcrossNodes) {
  // 3 ranks per node, groups of 2: one group per node, then one spanning both.
  auto l = assign_groups({"a", "a", "a", "b", "b", "b"}, 2);
  EXPECT_EQ(l.members, (Members{{0, 1}, {3, 4}, {2, 5}}));
  EXPECT_TRUE(l.idle.empty());
}

TEST(GroupLayout, RanksThatDoNotFillAGroupAreIdle) {
  auto l = assign_groups({"a", "a", "a", "a", "a"}, 2);
  EXPECT_EQ(l.members.size(), 2u);
  EXPECT_EQ(l.idle, (std::vector<int>{4}));
  EXPECT_EQ(l.group_of_rank[4], -1);
}

TEST(GroupLayout, TooFewRanksGiveNoGroup) {
  auto l = assign_groups({"a"}, 2);
  EXPECT_TRUE(l.members.empty());
  EXPECT_EQ(l.idle, (std::vector<int>{0}));
}

TEST(GroupLayout, RejectsGroupsOfZero) { EXPECT_THROW(assign_groups({"a"}, 0), UserError); }

}  // namespace
}  // namespace xpscale
