#include "fmnist/host_reduce.h"

namespace fmnist {

namespace xc = xpscale::collectives;

void allreduce_host(xc::Communicator& comm, void* values, std::size_t count, xc::DataType type,
                    xc::ReduceOp op) {
  if (!comm.device_memory()) {
    comm.allreduce(values, values, count, type, op);
    return;
  }
  // Communicator::copy moves between host and the communicator's memory in
  // its own stream order, so no CUDA call is needed here.
  const std::size_t bytes = count * xc::data_type_size(type);
  const xc::Communicator::Buffer staging = comm.allocate(bytes);
  comm.copy(staging.get(), values, bytes);
  comm.allreduce(staging.get(), staging.get(), count, type, op);
  comm.copy(values, staging.get(), bytes);
  comm.synchronize();
}

}  // namespace fmnist
