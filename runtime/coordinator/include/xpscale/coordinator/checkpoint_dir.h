#pragma once
// A trial's checkpoint directory: the contract between the coordinator,
// which owns one directory per trial (out_dir/trials/<id>/checkpoint, the
// same on every attempt) and copies it for PBT's exploit, and the trial,
// which writes its checkpoints there and marks each whole one with a step
// marker (xpscale_checkpoint.json = {"step": N}).
#include <cstdint>
#include <filesystem>

namespace xpscale {

// out_dir/trials/<trial>: the trial's own directory (its logs, params).
std::filesystem::path trial_dir_of(const std::filesystem::path& out_dir, std::uint64_t trial);
// trial_dir_of(out_dir, trial)/checkpoint.
std::filesystem::path checkpoint_dir_of(const std::filesystem::path& out_dir, std::uint64_t trial);

// The step recorded by Trial::checkpoint_saved() in `checkpoint_dir`, or -1
// when there is no marker. Throws Error for a marker that is not
// {"step": <integer >= 0>}. The same format as trial/report.h and
// python/xpscale/report.py, which external trials use.
std::int64_t read_checkpoint_step(const std::filesystem::path& checkpoint_dir);
// Writes the marker that read_checkpoint_step() reads: a temporary file,
// fsync, rename over the old marker, fsync of the directory (a crash leaves
// the old marker or the new one). Throws Error naming the path when it
// cannot be written, or for step < 0.
void write_checkpoint_step(const std::filesystem::path& checkpoint_dir, std::int64_t step);

namespace detail {

// PBT's exploit on disk (schedule/scheduler.h, TrialRestart): replaces the
// directory `to` with a copy of `from`. The copy is made in a sibling
// temporary directory and renamed into place, so `to` is never
// half-written. `from` may belong to a trial that is still running: when
// its step marker changes during the copy, the copy is made again (up to 5
// times). A missing `from` leaves an empty `to` (the trial starts from
// scratch with the new parameters). Throws Error naming the paths when the
// file system refuses.
void copy_checkpoint_dir(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace detail
}  // namespace xpscale
