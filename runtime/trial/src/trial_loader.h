#pragma once
// The runtime's side of the sharded loader: a GroupView over the group's
// Communicator, loader options from a config's data split, and loader
// states saved with (and restored from) a trial's checkpoint.
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "xpscale/collectives/communicator.h"
#include "xpscale/config/sweep_config.h"
#include "xpscale/sharding/loader.h"
#include "xpscale/trial/group_view.h"

namespace xpscale {

// The leader's text broadcast to the group (collective); `text` is only
// read on root.
std::string broadcast_text(collectives::Communicator& comm, const std::string& text, int root);

LoaderOptions loader_options(const DatasetSpec& spec, std::uint64_t global_batch);
DatasetLocation dataset_location(const DatasetSpec& spec);

// checkpoint_dir/loader-<split>-<step>.json, written atomically before the
// step's marker: named by step so that a crash between the two never pairs
// a checkpoint with a later loader state.
void save_loader_states(const std::filesystem::path& checkpoint_dir, std::int64_t step,
                        const std::map<std::string, std::unique_ptr<ShardedLoader>>& loaders);
std::optional<std::string> read_loader_state(const std::filesystem::path& checkpoint_dir,
                                             const std::string& split, std::int64_t step);

}  // namespace xpscale
