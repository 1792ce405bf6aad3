#pragma once
// How the world's ranks split into trial groups, node-first.
#include <string>
#include <vector>

namespace xpscale {

struct GroupLayout {
  // group of each world rank, -1 for a rank left idle.
  std::vector<int> group_of_rank;
  // each group's world ranks, in group-rank order (index 0 = leader).
  std::vector<std::vector<int>> members;
  std::vector<int> idle;  // world ranks in no group
};

// Groups of `ranks_per_trial` ranks. `node_of_rank[r]` names rank r's node
// (any id; equal ids = same node). Node-first: each node's ranks, in rank
// order, first fill whole groups within the node; the ranks left over on
// the nodes are then pooled, in node order, into groups that span nodes;
// what remains after that (fewer than ranks_per_trial) is idle. So a trial
// stays within a node whenever ranks_per_trial divides the node's ranks.
// Throws UserError when ranks_per_trial < 1.
GroupLayout assign_groups(const std::vector<std::string>& node_of_rank, int ranks_per_trial);

}  // namespace xpscale
