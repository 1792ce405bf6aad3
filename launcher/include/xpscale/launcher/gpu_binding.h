#pragma once
// Which GPUs a rank's trial process gets (CUDA_VISIBLE_DEVICES).
#include <cstdint>
#include <string>

namespace xpscale::launcher {

// CUDA_VISIBLE_DEVICES for the trial of a rank with node-local rank
// `local_rank` among `local_size` ranks of the job on its node, with
// `gpus_per_rank` GPUs each. `visible` is the rank's own
// CUDA_VISIBLE_DEVICES ("" when unset).
//   - unset: devices [l*g, (l+1)*g) of the node;
//   - a node-wide list (at least local_size*g entries, as mpirun or
//     `srun --gpus-per-node` leave it): entries [l*g, (l+1)*g) of it;
//   - exactly g entries (a per-task binding: `srun --gpus-per-task=g`, or
//     --gpu-bind, gives each task its own, often "0" after remapping): the
//     rank's own list as it is, never indexed by the node-local rank.
// Throws Error naming the numbers when the list fits neither.
std::string select_visible_devices(const std::string& visible, int local_rank, int local_size,
                                   std::int64_t gpus_per_rank);

}  // namespace xpscale::launcher
