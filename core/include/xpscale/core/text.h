#pragma once
// Small text helpers for messages.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xpscale {

// Edit distance (insert, delete, substitute, swap adjacent).
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate nearest to `word`, if near enough to be a likely typo.
std::optional<std::string> nearest(std::string_view word,
                                   const std::vector<std::string>& candidates);

// The note for a word not among candidates: "did you mean 'x'?" for a likely
// typo, else "<fallback_label>: 'a', 'b' or 'c'", or "" without a label.
std::string typo_note(std::string_view word, const std::vector<std::string>& candidates,
                      std::string_view fallback_label = {});

// "'a', 'b' or 'c'"
std::string quoted_list(const std::vector<std::string>& words);

// Which bytes escaped() writes as \xNN.
enum class Escape {
  kControl,   // control bytes only: UTF-8 text stays readable
  kNonAscii,  // every byte outside printable ASCII (names from binary headers)
};
// Untrusted bytes for a message: at most max_bytes of them, the escaped
// ones as \xNN (so no terminal escape reaches the user's terminal), and
// "..." when cut.
std::string escaped(std::string_view text, std::size_t max_bytes, Escape which);

}  // namespace xpscale
