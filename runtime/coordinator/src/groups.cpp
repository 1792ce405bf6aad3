#include "xpscale/coordinator/groups.h"

#include <map>

#include "xpscale/core/error.h"

namespace xpscale {

GroupLayout assign_groups(const std::vector<std::string>& node_of_rank, int ranks_per_trial) {
  if (ranks_per_trial < 1)
    throw UserError("ranks_per_trial must be >= 1, got " + std::to_string(ranks_per_trial));
  // Nodes in order of their first rank, each with its ranks in rank order.
  std::vector<std::vector<int>> nodes;
  std::map<std::string, std::size_t> index;
  for (int r = 0; r < static_cast<int>(node_of_rank.size()); ++r) {
    auto [it, fresh] = index.emplace(node_of_rank[static_cast<std::size_t>(r)], nodes.size());
    if (fresh) nodes.emplace_back();
    nodes[it->second].push_back(r);
  }
  GroupLayout layout;
  layout.group_of_rank.assign(node_of_rank.size(), -1);
  const auto k = static_cast<std::size_t>(ranks_per_trial);
  auto add_group = [&](std::vector<int> ranks) {
    const int g = static_cast<int>(layout.members.size());
    for (int r : ranks) layout.group_of_rank[static_cast<std::size_t>(r)] = g;
    layout.members.push_back(std::move(ranks));
  };
  std::vector<int> leftover;
  for (const auto& node : nodes) {
    std::size_t i = 0;
    for (; i + k <= node.size(); i += k)
      add_group({node.begin() + static_cast<long>(i), node.begin() + static_cast<long>(i + k)});
    leftover.insert(leftover.end(), node.begin() + static_cast<long>(i), node.end());
  }
  std::size_t i = 0;
  for (; i + k <= leftover.size(); i += k)
    add_group(
        {leftover.begin() + static_cast<long>(i), leftover.begin() + static_cast<long>(i + k)});
  layout.idle.assign(leftover.begin() + static_cast<long>(i), leftover.end());
  return layout;
}

}  // namespace xpscale
