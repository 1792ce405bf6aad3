#include "xpscale/trial/trial.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "trial_loader.h"
#include "xpscale/core/text.h"

namespace xpscale {
namespace {

std::string json_type(const nlohmann::ordered_json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_null()) return "null";
  if (v.is_array()) return "a list";
  return "a mapping";
}

}  // namespace

namespace detail {

void throw_param_error(std::uint64_t trial, std::string_view name, const Params& params,
                       std::string_view wanted) {
  const std::string who =
      "trial " + std::to_string(trial) + ": parameter '" + std::string(name) + "'";
  auto it = params.find(std::string(name));
  if (it == params.end()) {
    std::vector<std::string> names;
    for (const auto& [k, v] : params.items()) names.push_back(k);
    std::string msg = "trial " + std::to_string(trial) + ": no parameter '" + std::string(name) +
                      "'; the sweep's parameters are " + quoted_list(names);
    if (auto note = typo_note(std::string(name), names); !note.empty()) msg += " (" + note + ")";
    throw TrialError(msg);
  }
  throw TrialError(who + " is " + json_type(*it) + " (" + it->dump() + "), expected " +
                   std::string(wanted));
}

}  // namespace detail

Trial::Trial(Info info, collectives::Communicator& comm, detail::TrialChannel& channel)
    : info_(std::move(info)), comm_(&comm), channel_(&channel) {
  resume_step_ = read_checkpoint_step(info_.checkpoint_dir);
}

const std::filesystem::path& Trial::checkpoint_dir() const {
  if (!checkpoint_dir_made_) {
    std::error_code ec;
    std::filesystem::create_directories(info_.checkpoint_dir, ec);
    if (ec)
      throw Error("cannot create the checkpoint directory " + info_.checkpoint_dir.string() + ": " +
                  ec.message());
    checkpoint_dir_made_ = true;
  }
  return info_.checkpoint_dir;
}

bool Trial::has_param(std::string_view name) const {
  return info_.params.contains(std::string(name));
}

// The data loaders' figures go with every report of a trial that made
// one, so that the report's timeline can show them per trial: the time
// next() waited for bytes over the time since the first next(), and the
// shard bytes per second, over every loader of this rank. A metric the
// trial reports under the same name wins.
nlohmann::json Trial::with_loader_stats(const nlohmann::json& metrics) const {
  if (loaders_.empty() || !metrics.is_object()) return metrics;
  double wait = 0, elapsed = 0, rate = 0;
  for (const auto& [split, loader] : loaders_) {
    const LoaderStats s = loader->stats();
    wait += s.wait_s;
    elapsed += s.elapsed_s;
    rate += s.bytes_per_s();
  }
  if (elapsed <= 0) return metrics;
  nlohmann::json out = metrics;
  if (!out.contains(kLoaderStallMetric)) out[kLoaderStallMetric] = wait / elapsed;
  if (!out.contains(kLoaderRateMetric)) out[kLoaderRateMetric] = rate;
  return out;
}

Decision Trial::report(std::int64_t step, const nlohmann::json& metrics) {
  return channel_->report(step, with_loader_stats(metrics), stop_reason_);
}

Decision Trial::report_as_leader(std::int64_t step, const nlohmann::json& metrics) {
  return channel_->report_as_leader(step, with_loader_stats(metrics), stop_reason_);
}

void Trial::checkpoint_saved(std::int64_t step) {
  // The loaders' states first: a step marker promises a whole checkpoint.
  if (is_leader()) save_loader_states(checkpoint_dir(), step, loaders_);
  write_checkpoint_step(info_.checkpoint_dir, step);
}

void Trial::log(std::string_view message) const {
  std::string line = "[trial " + std::to_string(info_.id) + "." + std::to_string(info_.attempt) +
                     " r" + std::to_string(info_.group_rank) + "] ";
  line.append(message);
  line += '\n';
  // One write so that lines of concurrent ranks do not interleave.
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

}  // namespace xpscale
