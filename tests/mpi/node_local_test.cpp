// node_local_rank/node_local_size agree with the launcher and with each
// other across ranks, on MPI_COMM_WORLD and on a sub-communicator.
#include <mpi.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "xpscale/collectives/mpi_check.h"

namespace xpscale {
namespace {

struct Placement {
  std::string node;  // MPI_Get_processor_name: the host name under Open MPI
  int local_rank = 0;
  int local_size = 0;
};

// Every rank's placement in comm, in comm's rank order. Collective.
std::vector<Placement> gather_placements(MPI_Comm comm) {
  constexpr int kNameBytes = MPI_MAX_PROCESSOR_NAME;
  char name[kNameBytes] = {};
  int length = 0;
  XPSCALE_MPI_CHECK(MPI_Get_processor_name(name, &length));
  const int mine[2] = {node_local_rank(comm), node_local_size(comm)};
  int size = 0;
  XPSCALE_MPI_CHECK(MPI_Comm_size(comm, &size));
  std::vector<int> numbers(2 * static_cast<std::size_t>(size));
  std::vector<char> names(kNameBytes * static_cast<std::size_t>(size));
  XPSCALE_MPI_CHECK(MPI_Allgather(mine, 2, MPI_INT, numbers.data(), 2, MPI_INT, comm));
  XPSCALE_MPI_CHECK(
      MPI_Allgather(name, kNameBytes, MPI_CHAR, names.data(), kNameBytes, MPI_CHAR, comm));
  std::vector<Placement> all(static_cast<std::size_t>(size));
  for (std::size_t r = 0; r < all.size(); ++r) {
    all[r].node = std::string(&names[r * kNameBytes]);
    all[r].local_rank = numbers[2 * r];
    all[r].local_size = numbers[2 * r + 1];
  }
  return all;
}

// On each node, the ranks of comm there have local ranks 0..k-1 in comm's
// order and all report size k.
void expect_consistent(const std::vector<Placement>& all) {
  std::map<std::string, std::vector<const Placement*>> by_node;
  for (const Placement& p : all) by_node[p.node].push_back(&p);
  for (const auto& [node, ranks] : by_node) {
    for (std::size_t i = 0; i < ranks.size(); ++i) {
      EXPECT_EQ(ranks[i]->local_rank, static_cast<int>(i)) << "on node " << node;
      EXPECT_EQ(ranks[i]->local_size, static_cast<int>(ranks.size())) << "on node " << node;
    }
  }
}

TEST(NodeLocal, AgreesWithOpenMpiEnvironment) {
  const char* rank = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  const char* size = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (rank == nullptr || size == nullptr) GTEST_SKIP() << "not started by Open MPI's mpiexec";
  EXPECT_EQ(node_local_rank(MPI_COMM_WORLD), std::atoi(rank));
  EXPECT_EQ(node_local_size(MPI_COMM_WORLD), std::atoi(size));
}

TEST(NodeLocal, ConsistentAcrossRanksOfWorld) {
  expect_consistent(gather_placements(MPI_COMM_WORLD));
}

TEST(NodeLocal, ConsistentOnASubCommunicator) {
  int rank = 0;
  XPSCALE_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  MPI_Comm half = MPI_COMM_NULL;
  // Reverse order inside each half, so local ranks must follow the
  // sub-communicator, not MPI_COMM_WORLD.
  XPSCALE_MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, rank % 2, -rank, &half));
  const std::vector<Placement> all = gather_placements(half);
  XPSCALE_MPI_CHECK(MPI_Comm_free(&half));
  expect_consistent(all);
}

}  // namespace
}  // namespace xpscale
