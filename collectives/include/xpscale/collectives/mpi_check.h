#pragma once
// The one boundary between xpscale and the MPI C API: every MPI call whose
// failure should not go unnoticed goes through XPSCALE_MPI_CHECK, and the
// node-local queries every rank needs to pick its GPU and to build groups
// node-first (design.md, "Data flow of one sweep").
#include <mpi.h>

#include "xpscale/collectives/error.h"

namespace xpscale {
namespace detail {
// Builds the message and throws; out of line so the macro stays small.
// code: what the MPI call returned (not MPI_SUCCESS).
[[noreturn]] void throw_mpi_error(int code, const char* call, const char* file, int line);
}  // namespace detail

// Rank of the calling process among the processes of comm that share its
// node (MPI_Comm_split_type with MPI_COMM_TYPE_SHARED), ordered as in comm:
// in [0, node_local_size(comm)).
// Collective over comm: every rank of comm must call it, in the same order
// relative to other collectives. Throws CollectiveError when an MPI call
// returns an error (only reachable on a comm whose error handler returns).
int node_local_rank(MPI_Comm comm);

// Number of processes of comm on the caller's node, >= 1. Collective over
// comm, throws as node_local_rank does.
int node_local_size(MPI_Comm comm);

}  // namespace xpscale

// Evaluates the MPI call once; when it returns anything but MPI_SUCCESS,
// throws xpscale::CollectiveError with the message
//   "file:line: <call text> failed: <MPI_Error_string> (MPI error class N)".
// Variadic so that calls with template arguments need no extra parentheses.
// MPI only returns errors on communicators whose error handler is
// MPI_ERRORS_RETURN; under the default MPI_ERRORS_ARE_FATAL it aborts first.
#define XPSCALE_MPI_CHECK(...)                                                                     \
  do {                                                                                             \
    const int xpscale_mpi_check_rc_ = (__VA_ARGS__);                                               \
    if (xpscale_mpi_check_rc_ != MPI_SUCCESS) {                                                    \
      ::xpscale::detail::throw_mpi_error(xpscale_mpi_check_rc_, #__VA_ARGS__, __FILE__, __LINE__); \
    }                                                                                              \
  } while (false)
