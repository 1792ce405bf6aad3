#pragma once
#include <mpi.h>

#include <memory>

#include "xpscale/collectives/communicator.h"

namespace xpscale::collectives::detail {

// The MPI backend (host memory). Collective over comm. `options` has been
// resolved by make_communicator: backend "mpi", debug_checks final.
std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm, const Options& options);

}  // namespace xpscale::collectives::detail
