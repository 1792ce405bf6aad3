#pragma once
// Checkpoints of the MLP trainer: the weights, the optimizer's momentum and
// the epoch they belong to, in one binary file per epoch.
//
// Layout (little-endian, this is an example, not an interchange format):
//   "XPFMNIST" | u32 version | i32 inputs, hidden, classes | i64 epoch |
//   u64 n | f32 params[n] | f32 velocity[n] | u64 FNV-1a of all before it
#include <cstdint>
#include <filesystem>
#include <vector>

#include "fmnist/mlp.h"
#include "xpscale/core/error.h"

namespace fmnist {

class CheckpointError : public xpscale::Error {
 public:
  using xpscale::Error::Error;
};

struct Checkpoint {
  std::int64_t epoch = 0;
  MlpShape shape;
  std::vector<float> params;
  std::vector<float> velocity;
};

// dir / "mlp-epoch-<epoch>.bin". One file per epoch, so that the file of
// the epoch the runtime recorded (Trial::resume_step) is never overwritten
// by a later epoch that crashed before being recorded.
std::filesystem::path checkpoint_file(const std::filesystem::path& dir, std::int64_t epoch);

// Writes to a temporary file in the same directory, flushes it, and renames
// it over `file`, so a reader sees the old file or the whole new one.
// Throws CheckpointError naming the file.
void save_checkpoint(const std::filesystem::path& file, const Checkpoint& checkpoint);

// Throws CheckpointError naming the file when it is missing, short, of
// another format or version, or fails its checksum.
Checkpoint load_checkpoint(const std::filesystem::path& file);

// Throws CheckpointError naming both shapes unless `checkpoint` holds a
// model of `shape` (parameters and momentum of its size).
void check_fits(const Checkpoint& checkpoint, const MlpShape& shape);

// Removes the epoch files in `dir` older than `keep_epoch`; errors ignored
// (stale files only cost space).
void remove_checkpoints_before(const std::filesystem::path& dir, std::int64_t keep_epoch);

}  // namespace fmnist
