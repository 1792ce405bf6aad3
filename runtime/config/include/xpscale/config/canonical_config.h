#pragma once
// A sweep config as data, not text: what makes two config files the same
// sweep. A store remembers its sweep's config by canonical_config_hash(), so
// an edit of comments, quoting, key order or layout is the same sweep, and a
// change of any value is not (and match_stored_config says which).
#include <string>

#include <nlohmann/json.hpp>

namespace xpscale {

// The YAML document of `text` as JSON: mappings with their keys sorted,
// aliases expanded, scalars typed as the config reader types them (1 is an
// integer, 1.0 a float, "1" a string; .inf, -.inf and .nan become those
// strings). Comments, quoting and layout are gone. Throws ConfigError
// (naming `path`) for text that is not one YAML document, a mapping key
// that is not a scalar, or a document that aliases expand past
// kMaxSweepConfigBytes nodes. A key given twice keeps its last value, as
// the config reader (and W&B) reads it.
nlohmann::json canonical_config(const std::string& text, const std::string& path);

// sha256 (hex) of canonical_config(text, path) written as compact JSON.
// Throws as canonical_config does.
std::string canonical_config_hash(const std::string& text, const std::string& path);

// The first difference between two canonical configs, in key order, as
// "parameters.lr.max: 0.1 -> 0.2", "parameters.wd: added {...}",
// "seed: removed (was 3)" or "parameters.x.values: 3 values -> 4 values";
// "" when they are equal.
std::string first_config_difference(const nlohmann::json& before, const nlohmann::json& after);

// How a config compares with the one a store was made for.
struct StoredConfigMatch {
  bool same = false;       // the same sweep
  std::string hash;        // canonical_config_hash of the new text: store this
  std::string difference;  // when not the same: the first difference, for people
};

// Compares `text` with a store's config hash and text. The same sweep when
// the stored hash is the canonical hash of `text`, or (stores written before
// canonical hashes) the sha256 of `text` itself, or when the stored text has
// the same canonical form. With an empty stored_hash (no store yet) `same`
// is false and only `hash` is filled in. Throws as canonical_config does for
// `text`; a stored text that does not parse only makes the difference say so.
StoredConfigMatch match_stored_config(const std::string& stored_hash,
                                      const std::string& stored_text, const std::string& text,
                                      const std::string& path);

}  // namespace xpscale
