#pragma once
// Reductions of a few host values (a loss, a count, an "ok" flag) over a
// communicator of either memory kind. The NCCL backend reduces device
// memory only, so for it the values travel through a small buffer from
// Communicator::allocate; the MPI backend reduces them where they are.
#include <cstddef>

#include "xpscale/collectives/communicator.h"

namespace fmnist {

// Allreduces `count` elements of `type` at host address `values`, in place.
// Collective over comm; throws what the communicator throws.
void allreduce_host(xpscale::collectives::Communicator& comm, void* values, std::size_t count,
                    xpscale::collectives::DataType type, xpscale::collectives::ReduceOp op);

}  // namespace fmnist
