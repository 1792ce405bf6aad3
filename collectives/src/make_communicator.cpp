// make_communicator: resolves the backend and the debug mode with the whole
// group (so that no rank picks NCCL or checks while a peer does not), then
// hands over to the backend.
#include <mpi.h>

#include <string>

#include "call_check.h"
#include "mpi/mpi_communicator.h"
#include "usage_error.h"
#include "xpscale/collectives/communicator.h"
#include "xpscale/collectives/device.h"
#include "xpscale/collectives/mpi_check.h"
#if defined(XPSCALE_HAVE_NCCL)
#include "nccl/nccl_factory.h"
#endif

namespace xpscale::collectives {

std::string resolve_backend(std::string_view name) {
  if (name == "mpi" || name == "nccl") return std::string(name);
  if (name == "auto") return built_with_nccl() && cuda_device_count() > 0 ? "nccl" : "mpi";
  detail::throw_usage_error("make_communicator", "unknown backend '" + std::string(name) +
                                                     "' (expected auto, mpi or nccl)");
}

std::unique_ptr<Communicator> make_communicator(MPI_Comm comm, const Options& options) {
  Options resolved = options;
  resolved.backend = resolve_backend(options.backend);
  resolved.debug_checks =
      options.debug_checks || (options.debug_checks_from_env && detail::debug_checks_from_env());
  resolved.debug_checks_from_env = false;
  if (options.timeout.count() < 0) {
    detail::throw_usage_error("make_communicator", "negative timeout");
  }
  // One all-reduce settles both for the group: NCCL only when every rank
  // can (min), the checks when any rank asks (max, as -x).
  int local[2] = {resolved.backend == "nccl" ? 1 : 0, resolved.debug_checks ? -1 : 0};
  if (options.backend == "auto") {
    int agreed[2] = {0, 0};
    XPSCALE_MPI_CHECK(MPI_Allreduce(local, agreed, 2, MPI_INT, MPI_MIN, comm));
    resolved.backend = agreed[0] == 1 ? "nccl" : "mpi";
    resolved.debug_checks = agreed[1] == -1;
  } else {
    int any_checks = 0;
    XPSCALE_MPI_CHECK(MPI_Allreduce(&local[1], &any_checks, 1, MPI_INT, MPI_MIN, comm));
    resolved.debug_checks = any_checks == -1;
  }

  if (resolved.backend == "mpi") return detail::make_mpi_communicator(comm, resolved);
#if defined(XPSCALE_HAVE_NCCL)
  if (cuda_device_count() == 0) {
    detail::throw_usage_error("make_communicator",
                              "backend nccl needs a CUDA device: " + cuda_unavailable_reason());
  }
  return detail::make_nccl_communicator(comm, resolved);
#else
  detail::throw_usage_error("make_communicator",
                            "backend nccl requested but this build has no NCCL");
#endif
}

}  // namespace xpscale::collectives
