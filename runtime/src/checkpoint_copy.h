#pragma once
// PBT's exploit on disk: one trial's checkpoint directory becomes a copy of
// another's (scheduler.h, TrialRestart).
#include <filesystem>

namespace xpscale::detail {

// Replaces the directory `to` with a copy of `from`. The copy is made in a
// sibling temporary directory and renamed into place, so `to` is never
// half-written. `from` may belong to a trial that is still running: when
// its checkpoint marker (trial.h, checkpoint_saved) changes during the
// copy, the copy is made again (up to 5 times). A missing `from` leaves an
// empty `to` (the trial starts from scratch with the new parameters).
// Throws Error naming the paths when the file system refuses.
void copy_checkpoint_dir(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace xpscale::detail
