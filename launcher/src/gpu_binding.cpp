#include "xpscale/launcher/gpu_binding.h"

#include <sstream>
#include <vector>

#include "xpscale/core/error.h"

namespace xpscale::launcher {
namespace {

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string join_range(const std::vector<std::string>& ids, std::int64_t first, std::int64_t n) {
  std::string out;
  for (std::int64_t i = first; i < first + n; ++i)
    out += (out.empty() ? "" : ",") + ids[static_cast<std::size_t>(i)];
  return out;
}

}  // namespace

std::string select_visible_devices(const std::string& visible, int local_rank, int local_size,
                                   std::int64_t gpus_per_rank) {
  const std::int64_t g = gpus_per_rank;
  const std::int64_t first = static_cast<std::int64_t>(local_rank) * g;
  const auto ids = split_list(visible);
  if (ids.empty()) {
    std::string out;
    for (std::int64_t d = first; d < first + g; ++d)
      out += (out.empty() ? "" : ",") + std::to_string(d);
    return out;
  }
  const auto n = static_cast<std::int64_t>(ids.size());
  if (n >= static_cast<std::int64_t>(local_size) * g) return join_range(ids, first, g);
  if (n == g) return join_range(ids, 0, g);
  throw Error("node-local rank " + std::to_string(local_rank) + " of " +
              std::to_string(local_size) + " needs " + std::to_string(g) +
              " GPU(s) (resources.gpus_per_rank) but CUDA_VISIBLE_DEVICES=" + visible + " lists " +
              std::to_string(n) + ": neither the node's " + std::to_string(local_size * g) +
              " nor this rank's own " + std::to_string(g) + " (ask Slurm for --gpus-per-node=" +
              std::to_string(local_size * g) + " or --gpus-per-task=" + std::to_string(g) + ")");
}

}  // namespace xpscale::launcher
