// The engine-independent part of the store: status names, where an out_dir
// keeps its store files, the JSONL export (read through the interface) and
// the choice of engine.
#include "xpscale/store/store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "xpscale/store/postgres_store.h"
#include "xpscale/store/sqlite_store.h"

namespace xpscale {

std::string_view trial_status_name(TrialStatus s) {
  switch (s) {
    case TrialStatus::kQueued:
      return "queued";
    case TrialStatus::kRunning:
      return "running";
    case TrialStatus::kCompleted:
      return "completed";
    case TrialStatus::kStopped:
      return "stopped";
    case TrialStatus::kFailed:
      return "failed";
  }
  return "?";
}

TrialStatus parse_trial_status(std::string_view name) {
  for (auto s : {TrialStatus::kQueued, TrialStatus::kRunning, TrialStatus::kCompleted,
                 TrialStatus::kStopped, TrialStatus::kFailed})
    if (trial_status_name(s) == name) return s;
  throw StoreError("unknown trial status '" + std::string(name) + "' in the store");
}

std::filesystem::path store_path(const std::filesystem::path& out_dir, int task, int task_count) {
  if (task_count > 0) return out_dir / ("xpscale.task" + std::to_string(task) + ".db");
  return out_dir / "xpscale.db";
}

std::vector<std::filesystem::path> store_paths(const std::filesystem::path& out_dir) {
  std::vector<std::filesystem::path> found;
  std::error_code ec;
  if (std::filesystem::exists(store_path(out_dir), ec)) found.push_back(store_path(out_dir));
  std::vector<std::pair<long, std::filesystem::path>> tasks;
  for (const auto& e : std::filesystem::directory_iterator(out_dir, ec)) {
    const std::string name = e.path().filename().string();
    constexpr std::string_view prefix = "xpscale.task", suffix = ".db";
    if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) ||
        !name.ends_with(suffix))
      continue;
    const std::string digits =
        name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    tasks.emplace_back(std::stol(digits), e.path());
  }
  std::sort(tasks.begin(), tasks.end());
  for (auto& [k, p] : tasks) found.push_back(std::move(p));
  return found;
}

std::unique_ptr<Store> open_store(const std::filesystem::path& path, Store::Mode mode) {
  return std::make_unique<SqliteStore>(path, mode);
}

std::filesystem::path store_pointer_path(const std::filesystem::path& out_dir) {
  return out_dir / "xpscale.store";
}

std::optional<StorePointer> read_store_pointer(const std::filesystem::path& out_dir) {
  const auto path = store_pointer_path(out_dir);
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    throw UserError("cannot read " + path.string() + ": " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  const auto j = nlohmann::json::parse(text.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("url") || !j["url"].is_string() ||
      !j.contains("sweep") || !j["sweep"].is_string() ||
      !is_postgres_url(j["url"].get<std::string>()) || j["sweep"].get<std::string>().empty())
    throw UserError(path.string() +
                    " is not a store pointer (JSON with a postgresql:// \"url\" and a \"sweep\" "
                    "name, as xpscale run writes it)");
  return StorePointer{j["url"], j["sweep"]};
}

void write_store_pointer(const std::filesystem::path& out_dir, const StorePointer& pointer) {
  const auto path = store_pointer_path(out_dir);
  nlohmann::ordered_json j;
  j["engine"] = "postgresql";
  j["url"] = url_without_password(pointer.url);
  j["sweep"] = pointer.sweep;
  const std::string text = j.dump(2) + "\n";
  std::string tmp = path.string() + ".XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) throw StoreError("cannot write " + path.string() + ": " + std::strerror(errno));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw StoreError("cannot write " + path.string() + ": " + std::strerror(err));
  }
}

std::vector<std::unique_ptr<Store>> open_out_dir_stores(const std::filesystem::path& out_dir,
                                                        Store::Mode mode) {
  std::vector<std::unique_ptr<Store>> stores;
  if (auto pointer = read_store_pointer(out_dir)) {
    stores.push_back(std::make_unique<PostgresStore>(pointer->url, pointer->sweep, mode));
    return stores;
  }
  for (const auto& path : store_paths(out_dir)) stores.push_back(open_store(path, mode));
  return stores;
}

void Store::export_jsonl(std::ostream& out, bool with_metrics) const {
  if (auto s = sweep()) {
    nlohmann::ordered_json j;
    j["kind"] = "sweep";
    j["name"] = s->name;
    j["config_path"] = s->config_path;
    j["config_hash"] = s->config_hash;
    j["metric"] = s->metric;
    j["goal"] = goal_name(s->goal);
    j["planned"] = s->planned;
    j["created_at"] = s->created_at;
    out << j.dump() << '\n';
  }
  const auto all_attempts = attempts();
  std::size_t a = 0;
  for (const auto& t : trials()) {
    nlohmann::ordered_json j;
    j["kind"] = "trial";
    j["id"] = t.id;
    j["status"] = trial_status_name(t.status);
    j["params"] = t.params;
    j["attempts"] = t.attempts;
    j["group"] = t.group ? nlohmann::ordered_json(*t.group) : nlohmann::ordered_json();
    j["ranks"] = t.ranks;
    j["hosts"] = t.hosts;
    j["started_at"] = t.started_at ? nlohmann::ordered_json(*t.started_at) : nullptr;
    j["finished_at"] = t.finished_at ? nlohmann::ordered_json(*t.finished_at) : nullptr;
    j["reason"] = t.reason;
    j["best_value"] = t.best_value ? nlohmann::ordered_json(*t.best_value) : nullptr;
    j["best_step"] = t.best_step ? nlohmann::ordered_json(*t.best_step) : nullptr;
    j["last_step"] = t.last_step ? nlohmann::ordered_json(*t.last_step) : nullptr;
    j["last_metrics"] = t.last_metrics;
    auto history = nlohmann::ordered_json::array();
    for (; a < all_attempts.size() && all_attempts[a].trial <= t.id; ++a) {
      const auto& at = all_attempts[a];
      if (at.trial != t.id) continue;
      history.push_back({{"attempt", at.attempt},
                         {"run", at.run},
                         {"group", at.group},
                         {"ranks", at.ranks},
                         {"hosts", at.hosts},
                         {"started_at", at.started_at},
                         {"finished_at", at.finished_at ? nlohmann::ordered_json(*at.finished_at)
                                                        : nlohmann::ordered_json()},
                         {"status", at.status},
                         {"reason", at.reason},
                         {"stderr_tail", at.stderr_tail}});
    }
    j["history"] = std::move(history);
    if (with_metrics) {
      auto rows = nlohmann::ordered_json::array();
      for (const auto& m : metrics(t.id))
        rows.push_back(
            {{"attempt", m.attempt}, {"step", m.step}, {"time", m.time}, {"values", m.values}});
      j["metrics"] = std::move(rows);
    }
    out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  }
}

}  // namespace xpscale
