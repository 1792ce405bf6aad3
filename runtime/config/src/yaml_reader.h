#pragma once
// The one boundary to yaml-cpp. Turns YAML nodes into typed values while
// collecting compiler-style diagnostics (file:line:col, key path, expected,
// found) instead of throwing, so one pass reports every problem.
//
// Scalar typing follows the YAML 1.2 core schema: quoted scalars are always
// strings; plain ones are null (~, null, empty), bool (true/false in three
// casings), int, float (incl. .inf/.nan) or else string.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "xpscale/config/diagnostics.h"

namespace xpscale::yaml {

// Parses one YAML document. Syntax errors, several documents, an empty file
// or a file that is too large become diagnostics; returns nullopt then.
std::optional<YAML::Node> parse_document(const std::string& text, const std::string& file,
                                         std::vector<Diagnostic>& out);

// "the sweep config is [N bytes, ]larger than 16 MiB (...), the most a sweep
// config may be": the one wording of kMaxSweepConfigBytes for every reader.
std::string too_large_message(std::optional<std::size_t> bytes);

// `node` as JSON for comparing configs (canonical_config.h): mappings as
// nlohmann::json objects (keys sorted), aliases expanded, scalars typed as
// Reader types them, non-finite floats as the strings ".inf", "-.inf" and
// ".nan". A key given twice keeps its last value, as W&B's loader (PyYAML)
// does. Throws ConfigError naming `file` for a key that is not a scalar or
// more than `max_nodes` nodes.
nlohmann::json canonical_json(const YAML::Node& node, const std::string& file,
                              std::size_t max_nodes);

struct Entry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;
};

using EntryMap = std::map<std::string, Entry>;

// The value of the last entry named `key` in mapping `map` (PyYAML's
// choice for a key given twice), or an undefined node. yaml-cpp's
// operator[] would return the first.
YAML::Node last_value(const YAML::Node& map, const std::string& key);

// The entry for `key`, or nullptr.
const Entry* find(const EntryMap& entries, const std::string& key);
// "a.b" from "a" and "b"; "b" when path is empty.
std::string join_path(const std::string& path, const std::string& key);
// Numbers in messages as the user wrote them: 5, not 5.0.
std::string format_number(double v);

class Reader {
 public:
  // strict: every warning is reported as an error instead.
  explicit Reader(std::string file, bool strict = false)
      : file_(std::move(file)), strict_(strict) {}

  SourceLocation location(const YAML::Node& node) const;
  void error(const YAML::Node& at, const std::string& path, std::string message,
             std::string note = "");
  void error(SourceLocation where, const std::string& path, std::string message,
             std::string note = "");
  // Something W&B accepts whose meaning here the user should know; an
  // error in strict mode.
  void warn(const YAML::Node& at, const std::string& path, std::string message,
            std::string note = "");
  void warn(SourceLocation where, const std::string& path, std::string message,
            std::string note = "");
  bool ok() const { return diagnostics_.empty(); }
  bool strict() const { return strict_; }
  std::vector<Diagnostic>& diagnostics() { return diagnostics_; }
  std::vector<Diagnostic>& warnings() { return warnings_; }

  // The entries of a mapping, in file order. Reports a node that is not a
  // mapping, non-scalar keys, and keys not in `known` (with the nearest
  // known key as a note). Unknown entries are not returned. A key given
  // twice is a warning naming both places; its last value is returned (at
  // the first one's place in the order), as W&B's loader keeps the last.
  std::vector<Entry> entries(const YAML::Node& map, const std::string& path,
                             const std::vector<std::string>& known);

  // entries() keyed by name.
  EntryMap entry_map(const YAML::Node& map, const std::string& path,
                     const std::vector<std::string>& known);

  // Typed reads: report "expected ..., got ..." and return nullopt on mismatch.
  std::optional<double> number(const YAML::Node& node, const std::string& path);
  std::optional<std::int64_t> integer(const YAML::Node& node, const std::string& path);
  std::optional<bool> boolean(const YAML::Node& node, const std::string& path);
  std::optional<std::string> string(const YAML::Node& node, const std::string& path);
  // Any YAML value as JSON (maps with string keys only).
  std::optional<nlohmann::json> json(const YAML::Node& node, const std::string& path);

  // Whether a scalar was written as an integer (for W&B's int inference).
  static bool is_integer_scalar(const YAML::Node& node);
  // "\"fast\"", "12", "a list", "a mapping", "nothing" — for messages.
  static std::string describe(const YAML::Node& node);

 private:
  std::optional<nlohmann::json> json_at(const YAML::Node& node, const std::string& path, int depth);
  std::string file_;
  bool strict_ = false;
  std::vector<Diagnostic> diagnostics_;
  std::vector<Diagnostic> warnings_;
  std::size_t json_nodes_ = 0;  // bounds the work aliases can multiply
};

}  // namespace xpscale::yaml
