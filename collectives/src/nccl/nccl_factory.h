#pragma once
// The NCCL backend's entry point, declared without CUDA or NCCL headers so
// that make_communicator (CPU code) can reach it. Defined in
// nccl_communicator.cpp, part of xpscale_collectives_nccl; exists only in
// builds with XPSCALE_HAVE_NCCL.
#include <mpi.h>

#include <memory>

#include "xpscale/collectives/communicator.h"

namespace xpscale::collectives::detail {

// Collective over comm. `options` has been resolved by make_communicator
// (backend "nccl", debug_checks final); the caller has checked that this
// rank sees a CUDA device.
std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, const Options& options);

}  // namespace xpscale::collectives::detail
