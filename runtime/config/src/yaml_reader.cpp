#include "yaml_reader.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

#include <yaml-cpp/eventhandler.h>

#include "xpscale/config/sweep_config.h"
#include "xpscale/core/text.h"

namespace xpscale::yaml {
namespace {

// JSON values built from YAML: bounds depth and total size, which aliases
// could otherwise multiply exponentially ("billion laughs").
constexpr int kMaxJsonDepth = 64;
constexpr std::size_t kMaxJsonNodes = 100'000;

enum class ScalarKind { kNull, kBool, kInt, kFloat, kString };

struct Scalar {
  ScalarKind kind = ScalarKind::kString;
  bool b = false;
  std::int64_t i = 0;
  double f = 0;
};

bool is_plain(const YAML::Node& node) {
  const std::string& tag = node.Tag();
  return tag == "?" || tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:float" ||
         tag == "tag:yaml.org,2002:bool" || tag == "tag:yaml.org,2002:null";
}

bool parse_int(const std::string& s, std::int64_t& out) {
  std::size_t start = (!s.empty() && s[0] == '+') ? 1 : 0;
  if (start == s.size()) return false;
  const char* first = s.data() + start;
  const char* last = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(first, last, out);
  return ec == std::errc() && ptr == last;
}

bool parse_float(const std::string& s, double& out) {
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf" || s == "+.Inf" || s == "+.INF") {
    out = HUGE_VAL;
    return true;
  }
  if (s == "-.inf" || s == "-.Inf" || s == "-.INF") {
    out = -HUGE_VAL;
    return true;
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") {
    out = std::nan("");
    return true;
  }
  // Digits, one dot, an exponent: what YAML calls a float. from_chars alone
  // would also take "inf", "nan" and hex.
  bool digit = false;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-') {
      return false;
    }
  }
  if (!digit) return false;
  std::size_t start = (!s.empty() && s[0] == '+') ? 1 : 0;
  const char* first = s.data() + start;
  const char* last = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(first, last, out);
  return ec == std::errc() && ptr == last;
}

Scalar classify(const YAML::Node& node) {
  Scalar out;
  if (node.IsNull()) {
    out.kind = ScalarKind::kNull;
    return out;
  }
  if (!is_plain(node)) return out;  // quoted or !!str: a string
  const std::string& s = node.Scalar();
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") {
    out.kind = ScalarKind::kNull;
  } else if (s == "true" || s == "True" || s == "TRUE") {
    out.kind = ScalarKind::kBool;
    out.b = true;
  } else if (s == "false" || s == "False" || s == "FALSE") {
    out.kind = ScalarKind::kBool;
  } else if (parse_int(s, out.i)) {
    out.kind = ScalarKind::kInt;
  } else if (parse_float(s, out.f)) {
    out.kind = ScalarKind::kFloat;
  }
  return out;
}

std::string quote(const std::string& s) {
  // JSON string syntax: escapes control characters, so messages stay one line.
  std::string q = nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (q.size() > 80) q = q.substr(0, 76) + "...\"";
  return q;
}

// Offset of the first byte that is not part of well-formed UTF-8 (or is a
// NUL), or npos. YAML text is UTF-8, and parameter values end up in JSON,
// which must be valid UTF-8 too.
std::size_t first_invalid_utf8(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c == 0) return i;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xe0) == 0xc0)
      len = 2, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
      len = 3, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0)
      len = 4, cp = c & 0x07;
    else
      return i;
    if (i + len > s.size()) return i;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are invalid.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
      return i;
    i += len;
  }
  return std::string::npos;
}

// Records where each document starts; the events themselves are not needed.
struct DocumentCounter : YAML::EventHandler {
  YAML::Mark start = YAML::Mark::null_mark();
  void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// Whether `root`, the first document of `text`, is provably all of it, so
// that counting documents (a second scan, a third of the load time of a
// large config) can be skipped. A block mapping whose keys start in column
// 0 ends only at the end of the text or at a line that starts with `---`,
// `...` or `%` (a document marker or a directive): anything else in column 0
// is one of its keys or a syntax error Load has thrown. So such a root with
// none of those lines after its first line is the only document. (Checked
// against the event parser's count on generated texts; yaml-cpp's scanner
// ends block scalars and plain scalars at those markers too.)
bool holds_one_document(const YAML::Node& root, const std::string& text) {
  if (!root.IsMap() || root.Style() != YAML::EmitterStyle::Block) return false;
  const YAML::Mark mark = root.Mark();
  if (mark.is_null() || mark.column != 0 || mark.pos < 0) return false;
  // YAML also breaks lines at a lone CR; keep the check simple and count.
  if (text.find('\r') != std::string::npos) return false;
  // Lines after the root's first one (pos is a byte offset, less a BOM).
  std::size_t at = text.find('\n', static_cast<std::size_t>(mark.pos));
  while (at != std::string::npos) {
    const std::size_t line = at + 1;
    if (text.compare(line, 3, "---") == 0 || text.compare(line, 3, "...") == 0 ||
        text.compare(line, 1, "%") == 0)
      return false;
    at = text.find('\n', line);
  }
  return true;
}

}  // namespace

std::optional<YAML::Node> parse_document(const std::string& text, const std::string& file,
                                         std::vector<Diagnostic>& out) {
  if (text.size() > kMaxSweepConfigBytes) {
    out.push_back({{file, 0, 0}, "", too_large_message(text.size())});
    return std::nullopt;
  }
  if (const std::size_t bad = first_invalid_utf8(text); bad != std::string::npos) {
    int line = 1, column = 1;
    for (std::size_t i = 0; i < bad; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else if ((static_cast<unsigned char>(text[i]) & 0xc0) != 0x80) {
        ++column;
      }
    }
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned char>(text[bad]));
    out.push_back({{file, line, column},
                   "",
                   std::string("the file is not valid UTF-8: byte ") + hex + " here"});
    return std::nullopt;
  }
  try {
    YAML::Node doc = YAML::Load(text);  // the first document; Load ignores what follows
    if (holds_one_document(doc, text)) return doc;
    // Count the documents. YAML::LoadAll loops forever on some malformed
    // input (a stray ',' at the start of a document: yaml-cpp 0.7 yields
    // empty documents without consuming it), so documents are counted with
    // the event parser, which we can stop.
    std::istringstream stream(text);
    YAML::Parser parser(stream);
    DocumentCounter counter;
    std::vector<YAML::Mark> starts;
    while (starts.size() < 2 && parser.HandleNextDocument(counter)) {
      if (!starts.empty() && counter.start.pos == starts.back().pos) {
        // No progress: the parser is stuck on a character it cannot use.
        const auto pos = static_cast<std::size_t>(std::max(0, counter.start.pos));
        const std::string what = pos < text.size()
                                     ? nlohmann::json(std::string(1, text[pos])).dump()
                                     : std::string("end of input");
        out.push_back({{file, counter.start.line + 1, counter.start.column + 1},
                       "",
                       "YAML syntax error: unexpected " + what});
        return std::nullopt;
      }
      starts.push_back(counter.start);
    }
    if (starts.size() > 1) {
      const YAML::Mark m = starts[1];
      out.push_back({{file, m.line + 1, m.column + 1},
                     "",
                     "the file holds more than one YAML document; a sweep config is one"});
      return std::nullopt;
    }
    if (starts.empty() || doc.IsNull()) {
      out.push_back({{file, 0, 0}, "", "the config is empty; expected a mapping of sweep keys"});
      return std::nullopt;
    }
    return doc;
  } catch (const YAML::Exception& e) {
    const bool known = !e.mark.is_null();
    out.push_back({{file, known ? e.mark.line + 1 : 0, known ? e.mark.column + 1 : 0},
                   "",
                   "YAML syntax error: " + e.msg});
    return std::nullopt;
  }
}

std::string too_large_message(std::optional<std::size_t> bytes) {
  return "the sweep config is " + (bytes ? std::to_string(*bytes) + " bytes, " : std::string()) +
         "larger than " + std::to_string(kMaxSweepConfigBytes >> 20) + " MiB (" +
         std::to_string(kMaxSweepConfigBytes) + " bytes), the most a sweep config may be";
}

namespace {

// canonical_json's walk; `nodes` counts what it has built.
nlohmann::json canonical_at(const YAML::Node& node, const std::string& file, std::size_t& nodes,
                            std::size_t max_nodes) {
  auto fail = [&](const YAML::Node& at, const std::string& message) {
    const YAML::Mark m = at.Mark();
    return ConfigError(
        {{{file, m.is_null() ? 0 : m.line + 1, m.is_null() ? 0 : m.column + 1}, "", message}});
  };
  if (++nodes > max_nodes)
    throw fail(node, "the config expands (through aliases) to more than " +
                         std::to_string(max_nodes) + " values");
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar: {
      const Scalar s = classify(node);
      switch (s.kind) {
        case ScalarKind::kNull:
          return nullptr;
        case ScalarKind::kBool:
          return s.b;
        case ScalarKind::kInt:
          return s.i;
        case ScalarKind::kFloat:
          if (std::isnan(s.f)) return ".nan";
          if (std::isinf(s.f)) return s.f > 0 ? ".inf" : "-.inf";
          return s.f;
        case ScalarKind::kString:
          return node.Scalar();
      }
      return nullptr;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& item : node) arr.push_back(canonical_at(item, file, nodes, max_nodes));
      return arr;
    }
    case YAML::NodeType::Map: {
      nlohmann::json obj = nlohmann::json::object();
      for (auto it = node.begin(); it != node.end(); ++it) {
        if (!it->first.IsScalar())
          throw fail(it->first, "expected a key name, got " + Reader::describe(it->first));
        // A key given twice: the last value, as the loader keeps it.
        obj[it->first.Scalar()] = canonical_at(it->second, file, nodes, max_nodes);
      }
      return obj;
    }
  }
  return nullptr;
}

}  // namespace

nlohmann::json canonical_json(const YAML::Node& node, const std::string& file,
                              std::size_t max_nodes) {
  std::size_t nodes = 0;
  return canonical_at(node, file, nodes, max_nodes);
}

YAML::Node last_value(const YAML::Node& map, const std::string& key) {
  // Copies, not assignments: YAML::Node's operator= writes into the node.
  std::optional<YAML::Node> out;
  if (map.IsMap())
    for (auto it = map.begin(); it != map.end(); ++it)
      if (it->first.IsScalar() && it->first.Scalar() == key) out.emplace(it->second);
  return out ? *out : YAML::Node(YAML::NodeType::Undefined);
}

const Entry* find(const EntryMap& entries, const std::string& key) {
  auto it = entries.find(key);
  return it == entries.end() ? nullptr : &it->second;
}

std::string join_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

std::string format_number(double v) {
  if (v == std::floor(v) && std::abs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  return nlohmann::json(v).dump();
}

EntryMap Reader::entry_map(const YAML::Node& map, const std::string& path,
                           const std::vector<std::string>& known) {
  EntryMap out;
  for (auto& e : entries(map, path, known)) out.emplace(e.key, e);
  return out;
}

SourceLocation Reader::location(const YAML::Node& node) const {
  SourceLocation where{file_, 0, 0};
  if (node.IsDefined()) {
    const YAML::Mark m = node.Mark();
    if (!m.is_null()) {
      where.line = m.line + 1;
      where.column = m.column + 1;
    }
  }
  return where;
}

void Reader::error(const YAML::Node& at, const std::string& path, std::string message,
                   std::string note) {
  error(location(at), path, std::move(message), std::move(note));
}

void Reader::error(SourceLocation where, const std::string& path, std::string message,
                   std::string note) {
  diagnostics_.push_back({std::move(where), path, std::move(message), std::move(note)});
}

void Reader::warn(const YAML::Node& at, const std::string& path, std::string message,
                  std::string note) {
  warn(location(at), path, std::move(message), std::move(note));
}

void Reader::warn(SourceLocation where, const std::string& path, std::string message,
                  std::string note) {
  if (strict_) {
    if (note.empty()) note = "a warning, made an error by strict mode (--strict)";
    diagnostics_.push_back({std::move(where), path, std::move(message), std::move(note)});
    return;
  }
  warnings_.push_back({std::move(where), path, std::move(message), std::move(note)});
}

std::string Reader::describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return "nothing";
    case YAML::NodeType::Scalar:
      break;
  }
  const Scalar s = classify(node);
  if (s.kind == ScalarKind::kString) return quote(node.Scalar());
  if (s.kind == ScalarKind::kNull) return "nothing";
  return node.Scalar();
}

bool Reader::is_integer_scalar(const YAML::Node& node) {
  return node.IsScalar() && classify(node).kind == ScalarKind::kInt;
}

std::vector<Entry> Reader::entries(const YAML::Node& map, const std::string& path,
                                   const std::vector<std::string>& known) {
  std::vector<Entry> out;
  if (!map.IsMap()) {
    error(map, path, "expected a mapping, got " + describe(map));
    return out;
  }
  struct Seen {
    SourceLocation first;
    std::size_t index;  // in slots; npos for an unknown key
  };
  std::map<std::string, Seen> seen;
  // Entries are replaced by destroying and constructing them: assigning a
  // YAML::Node writes into the node it refers to, here the document's.
  std::vector<std::optional<Entry>> slots;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      error(key, path, "expected a key name, got " + describe(key));
      continue;
    }
    const std::string& name = key.Scalar();
    const std::string key_path = path.empty() ? name : path + "." + name;
    if (auto s = seen.find(name); s != seen.end()) {
      const SourceLocation& f = s->second.first;
      warn(key, key_path,
           "key '" + name + "' is given twice (first at " + f.file + ":" + std::to_string(f.line) +
               ":" + std::to_string(f.column) + "); the last one is used, as W&B does");
      if (s->second.index != std::string::npos) {
        auto& slot = slots[s->second.index];
        slot.reset();
        slot.emplace(Entry{name, key, it->second});
      }
      continue;
    }
    if (!known.empty() && std::find(known.begin(), known.end(), name) == known.end()) {
      seen.emplace(name, Seen{location(key), std::string::npos});
      error(key, key_path, "unknown key '" + name + "'", typo_note(name, known, "known keys here"));
      continue;
    }
    seen.emplace(name, Seen{location(key), slots.size()});
    slots.emplace_back(Entry{name, key, it->second});
  }
  out.reserve(slots.size());
  for (auto& slot : slots) out.push_back(std::move(*slot));
  return out;
}

std::optional<double> Reader::number(const YAML::Node& node, const std::string& path) {
  if (node.IsScalar()) {
    const Scalar s = classify(node);
    if (s.kind == ScalarKind::kInt) return static_cast<double>(s.i);
    if (s.kind == ScalarKind::kFloat) {
      if (std::isfinite(s.f)) return s.f;
      error(node, path, "expected a finite number, got " + node.Scalar());
      return std::nullopt;
    }
  }
  error(node, path, "expected a number, got " + describe(node));
  return std::nullopt;
}

std::optional<std::int64_t> Reader::integer(const YAML::Node& node, const std::string& path) {
  if (node.IsScalar()) {
    const Scalar s = classify(node);
    if (s.kind == ScalarKind::kInt) return s.i;
    // 1e3 or 32.0 are whole numbers written as floats: accept them.
    if (s.kind == ScalarKind::kFloat && std::isfinite(s.f) && s.f == std::floor(s.f) &&
        std::abs(s.f) < 9.0e15)
      return static_cast<std::int64_t>(s.f);
  }
  error(node, path, "expected an integer, got " + describe(node));
  return std::nullopt;
}

std::optional<bool> Reader::boolean(const YAML::Node& node, const std::string& path) {
  if (node.IsScalar()) {
    const Scalar s = classify(node);
    if (s.kind == ScalarKind::kBool) return s.b;
  }
  error(node, path, "expected true or false, got " + describe(node));
  return std::nullopt;
}

std::optional<std::string> Reader::string(const YAML::Node& node, const std::string& path) {
  // Any scalar's text is a string ("name: 2024" names a sweep "2024").
  if (node.IsScalar()) return node.Scalar();
  error(node, path, "expected a string, got " + describe(node));
  return std::nullopt;
}

std::optional<nlohmann::json> Reader::json(const YAML::Node& node, const std::string& path) {
  json_nodes_ = 0;
  return json_at(node, path, 0);
}

std::optional<nlohmann::json> Reader::json_at(const YAML::Node& node, const std::string& path,
                                              int depth) {
  if (depth > kMaxJsonDepth) {
    error(node, path, "value nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    return std::nullopt;
  }
  if (++json_nodes_ > kMaxJsonNodes) {
    if (json_nodes_ == kMaxJsonNodes + 1)
      error(node, path, "value has more than 100000 elements (aliases included)");
    return std::nullopt;
  }
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nlohmann::json(nullptr);
    case YAML::NodeType::Scalar: {
      const Scalar s = classify(node);
      switch (s.kind) {
        case ScalarKind::kNull:
          return nlohmann::json(nullptr);
        case ScalarKind::kBool:
          return nlohmann::json(s.b);
        case ScalarKind::kInt:
          return nlohmann::json(s.i);
        case ScalarKind::kFloat:
          if (!std::isfinite(s.f)) {
            error(node, path, "expected a finite number, got " + node.Scalar());
            return std::nullopt;
          }
          return nlohmann::json(s.f);
        case ScalarKind::kString:
          return nlohmann::json(node.Scalar());
      }
      return std::nullopt;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json arr = nlohmann::json::array();
      std::size_t i = 0;
      for (const auto& item : node) {
        auto v = json_at(item, path + "[" + std::to_string(i++) + "]", depth + 1);
        if (!v) return std::nullopt;
        arr.push_back(std::move(*v));
      }
      return arr;
    }
    case YAML::NodeType::Map: {
      nlohmann::json obj = nlohmann::json::object();
      for (auto it = node.begin(); it != node.end(); ++it) {
        if (!it->first.IsScalar()) {
          error(it->first, path, "expected a key name, got " + describe(it->first));
          return std::nullopt;
        }
        const std::string& key = it->first.Scalar();
        if (obj.contains(key))
          warn(it->first, path + "." + key,
               "key '" + key + "' is given twice in this value; the last one is used, as W&B does");
        auto v = json_at(it->second, path + "." + key, depth + 1);
        if (!v) return std::nullopt;
        obj[key] = std::move(*v);
      }
      return obj;
    }
  }
  return std::nullopt;
}

}  // namespace xpscale::yaml
