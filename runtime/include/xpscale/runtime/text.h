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

// "'a', 'b' or 'c'"
std::string quoted_list(const std::vector<std::string>& words);

}  // namespace xpscale
