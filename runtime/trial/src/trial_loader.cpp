#include "trial_loader.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "xpscale/sharding/error.h"
#include "xpscale/trial/trial.h"

namespace xpscale {

namespace xc = collectives;

namespace {

std::filesystem::path state_file(const std::filesystem::path& dir, const std::string& split,
                                 std::int64_t step) {
  return dir / ("loader-" + split + "-" + std::to_string(step) + ".json");
}

// Strings travel as i32 words (the Communicator moves typed elements).
std::size_t words_for(std::size_t bytes) { return (bytes + 3) / 4; }

}  // namespace

GroupView make_group_view(xc::Communicator& comm) {
  GroupView view;
  view.rank = comm.rank();
  view.size = comm.size();
  view.allgather = [&comm](const std::string& mine) {
    const auto n = static_cast<std::size_t>(comm.size());
    std::int64_t length = static_cast<std::int64_t>(mine.size());
    std::vector<std::int64_t> lengths(n);
    comm.allgather(&length, lengths.data(), 1, xc::DataType::kI64);
    std::int64_t longest = 0;
    for (std::int64_t l : lengths) longest = std::max(longest, l);
    const std::size_t words = words_for(static_cast<std::size_t>(longest));
    std::vector<std::int32_t> send(words, 0), recv(words * n, 0);
    std::memcpy(send.data(), mine.data(), mine.size());
    if (words > 0) comm.allgather(send.data(), recv.data(), words, xc::DataType::kI32);
    std::vector<std::string> all(n);
    for (std::size_t r = 0; r < n; ++r)
      all[r].assign(reinterpret_cast<const char*>(recv.data() + r * words),
                    static_cast<std::size_t>(lengths[r]));
    return all;
  };
  return view;
}

std::string broadcast_text(xc::Communicator& comm, const std::string& text, int root) {
  std::int64_t length = static_cast<std::int64_t>(text.size());
  comm.broadcast(&length, 1, xc::DataType::kI64, root);
  std::vector<std::int32_t> words(words_for(static_cast<std::size_t>(length)), 0);
  if (comm.rank() == root) std::memcpy(words.data(), text.data(), text.size());
  if (!words.empty()) comm.broadcast(words.data(), words.size(), xc::DataType::kI32, root);
  return std::string(reinterpret_cast<const char*>(words.data()), static_cast<std::size_t>(length));
}

LoaderOptions loader_options(const DatasetSpec& spec, std::uint64_t global_batch) {
  LoaderOptions o;
  o.seed = spec.seed;
  o.shuffle_shards = spec.shuffle_shards;
  o.shuffle_buffer_bytes = static_cast<std::uint64_t>(spec.shuffle_buffer_bytes.value_or(0));
  o.drop_last = spec.drop_last;
  o.on_error = spec.on_error == "skip" ? OnError::kSkip : OnError::kFail;
  o.global_batch = global_batch;
  if (spec.prefetch_bytes) o.max_bytes_in_flight = static_cast<std::uint64_t>(*spec.prefetch_bytes);
  o.cache_dir = spec.cache_dir;
  o.cache_max_bytes = static_cast<std::uint64_t>(spec.cache_max_bytes.value_or(0));
  return o;
}

DatasetLocation dataset_location(const DatasetSpec& spec) {
  DatasetLocation l;
  l.manifest = spec.manifest;
  if (spec.manifest.empty() && spec.prefix.empty()) l.urls = spec.urls;  // pattern: expanded
  l.prefix = spec.prefix;
  return l;
}

void save_loader_states(const std::filesystem::path& dir, std::int64_t step,
                        const std::map<std::string, std::unique_ptr<ShardedLoader>>& loaders) {
  for (const auto& [split, loader] : loaders) {
    const std::filesystem::path file = state_file(dir, split, step);
    const std::filesystem::path temp = file.string() + ".tmp." + std::to_string(::getpid());
    {
      std::ofstream out(temp, std::ios::trunc);
      out << loader->state().to_json() << '\n';
      out.close();
      if (!out) throw Error("cannot write the loader state " + temp.string());
    }
    std::error_code ec;
    std::filesystem::rename(temp, file, ec);
    if (ec)
      throw Error("cannot rename " + temp.string() + " to " + file.string() + ": " + ec.message());
  }
}

std::optional<std::string> read_loader_state(const std::filesystem::path& dir,
                                             const std::string& split, std::int64_t step) {
  std::ifstream in(state_file(dir, split, step));
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

ShardedLoader& Trial::loader(const std::string& split, std::uint64_t global_batch) {
  if (auto it = loaders_.find(split); it != loaders_.end()) return *it->second;
  const auto spec = info_.data.find(split);
  if (spec == info_.data.end())
    throw TrialError("trial " + std::to_string(info_.id) + ": the sweep config has no data." +
                     split + " section");
  // Every rank opens the dataset (manifest and indexes are small); a rank
  // that fails makes the whole group fail below instead of hanging.
  std::unique_ptr<ShardedLoader> loader;
  std::string error;
  try {
    loader = std::make_unique<ShardedLoader>(open_dataset(dataset_location(spec->second)),
                                             loader_options(spec->second, global_batch),
                                             make_group_view(comm()));
  } catch (const std::exception& e) {
    error = "data." + split + ": " + e.what();
  }
  std::int32_t ok = error.empty() ? 1 : 0;
  comm().allreduce(&ok, &ok, 1, xc::DataType::kI32, xc::ReduceOp::kMin);
  if (!ok) throw Error(error.empty() ? "data." + split + ": failed on another rank" : error);
  // A resumed attempt continues where its checkpoint left the loader; the
  // leader's copy is the group's (the directory may not be on every node).
  std::string saved;
  if (resume_step_ >= 0 && is_leader())
    saved = read_loader_state(info_.checkpoint_dir, split, resume_step_).value_or("");
  saved = broadcast_text(comm(), saved, 0);
  if (!saved.empty()) loader->restore(LoaderState::from_json(saved));
  return *loaders_.emplace(split, std::move(loader)).first->second;
}

}  // namespace xpscale
