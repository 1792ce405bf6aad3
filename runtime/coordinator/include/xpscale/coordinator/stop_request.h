#pragma once
// `xpscale stop OUT_DIR`: a request, as a file in out_dir, that the runs of
// the sweep there stop drawing trials.
//
// The file (<out_dir>/stop.json, written atomically) holds when it was
// made and whether running trials are cancelled too. Every run on out_dir
// (each task of a job array, on any node that sees out_dir) reads it about
// once a second and acts on any request other than the one that was there
// when it took its store, so a request never stops a run started later:
// running the sweep again resumes it.
//   stop:    no new trials start; running ones finish; exit 0.
//   cancel:  running ones are also stopped at their next report and
//            recorded interrupted, so a later run resumes them; exit 0.
#include <filesystem>
#include <optional>
#include <string>

namespace xpscale {

struct StopRequest {
  double at = 0;        // unix time of the request
  bool cancel = false;  // running trials are stopped too
  std::string by;       // who asked: "user@host pid N", for the log
};

std::filesystem::path stop_request_path(const std::filesystem::path& out_dir);

// Writes the request (replacing an older one). Throws UserError naming the
// file when it cannot be written.
void write_stop_request(const std::filesystem::path& out_dir, const StopRequest& request);

// The request in out_dir, or nullopt when there is none or it cannot be
// read as one (a torn or foreign file is ignored, never fatal to a run).
std::optional<StopRequest> read_stop_request(const std::filesystem::path& out_dir);

}  // namespace xpscale
