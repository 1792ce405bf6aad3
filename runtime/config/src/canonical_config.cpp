// Canonical sweep configs: the parsed YAML as sorted JSON, its hash, and
// the first difference between two of them.
#include "xpscale/config/canonical_config.h"

#include "xpscale/config/diagnostics.h"
#include "xpscale/config/sweep_config.h"
#include "xpscale/sharding/digest.h"
#include "yaml_reader.h"

namespace xpscale {
namespace {

std::string shown(const nlohmann::json& v) {
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 76) + " ...";
  return s;
}

std::string difference_at(const nlohmann::json& a, const nlohmann::json& b,
                          const std::string& path) {
  if (a == b) return "";
  const std::string where = path.empty() ? "the config" : path;
  if (a.is_object() && b.is_object()) {
    // Both std::maps: walk the two sorted key lists together.
    auto i = a.begin(), j = b.begin();
    while (i != a.end() || j != b.end()) {
      if (j == b.end() || (i != a.end() && i.key() < j.key())) {
        return yaml::join_path(path, i.key()) + ": removed (was " + shown(i.value()) + ")";
      }
      if (i == a.end() || j.key() < i.key()) {
        return yaml::join_path(path, j.key()) + ": added " + shown(j.value());
      }
      if (auto d = difference_at(i.value(), j.value(), yaml::join_path(path, i.key())); !d.empty())
        return d;
      ++i, ++j;
    }
    return "";
  }
  if (a.is_array() && b.is_array()) {
    const std::size_t n = std::min(a.size(), b.size());
    for (std::size_t k = 0; k < n; ++k)
      if (auto d = difference_at(a[k], b[k], path + "[" + std::to_string(k) + "]"); !d.empty())
        return d;
    return where + ": " + std::to_string(a.size()) + " values -> " + std::to_string(b.size()) +
           " values";
  }
  return where + ": " + shown(a) + " -> " + shown(b);
}

}  // namespace

nlohmann::json canonical_config(const std::string& text, const std::string& path) {
  std::vector<Diagnostic> diagnostics;
  auto root = yaml::parse_document(text, path, diagnostics);
  if (!root) throw ConfigError(std::move(diagnostics));
  try {
    return yaml::canonical_json(*root, path, kMaxSweepConfigBytes);
  } catch (const YAML::Exception& e) {
    const bool known = !e.mark.is_null();
    throw ConfigError({{{path, known ? e.mark.line + 1 : 0, known ? e.mark.column + 1 : 0},
                        "",
                        "YAML error: " + e.msg}});
  }
}

std::string canonical_config_hash(const std::string& text, const std::string& path) {
  return sha256_hex(canonical_config(text, path).dump());
}

std::string first_config_difference(const nlohmann::json& before, const nlohmann::json& after) {
  return difference_at(before, after, "");
}

StoredConfigMatch match_stored_config(const std::string& stored_hash,
                                      const std::string& stored_text, const std::string& text,
                                      const std::string& path) {
  StoredConfigMatch m;
  const nlohmann::json now = canonical_config(text, path);
  m.hash = sha256_hex(now.dump());
  if (stored_hash.empty()) return m;
  if (stored_hash == m.hash || stored_hash == sha256_hex(text)) {
    m.same = true;
    return m;
  }
  try {
    m.difference = first_config_difference(canonical_config(stored_text, "the stored config"), now);
  } catch (const ConfigError& e) {
    m.difference = std::string("the stored config cannot be compared (") + e.what() + ")";
    return m;
  }
  // A store written before canonical hashes, and a config edited since in
  // its comments or layout only.
  m.same = m.difference.empty();
  return m;
}

}  // namespace xpscale
