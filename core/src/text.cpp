#include "xpscale/core/text.h"

#include <algorithm>

namespace xpscale {

// Optimal string alignment distance; keys are short, so the O(n*m) table is
// cheap. Hand-written: no Debian package offers it for C++.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

std::optional<std::string> nearest(std::string_view word,
                                   const std::vector<std::string>& candidates) {
  if (word.size() > 64) return std::nullopt;  // not a typo of a short key
  std::optional<std::string> best;
  std::size_t best_distance = 0;
  for (const auto& c : candidates) {
    const std::size_t dist = edit_distance(word, c);
    if (!best || dist < best_distance) {
      best = c;
      best_distance = dist;
    }
  }
  // A typo changes a few characters: allow about one edit in three.
  const std::size_t limit = std::max<std::size_t>(1, (word.size() + 2) / 3);
  if (!best || best_distance == 0 || best_distance > limit) return std::nullopt;
  return best;
}

std::string typo_note(std::string_view word, const std::vector<std::string>& candidates,
                      std::string_view fallback_label) {
  if (auto near = nearest(word, candidates)) return "did you mean '" + *near + "'?";
  if (fallback_label.empty()) return "";
  return std::string(fallback_label) + ": " + quoted_list(candidates);
}

std::string quoted_list(const std::vector<std::string>& words) {
  std::string out;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out += i + 1 == words.size() ? " or " : ", ";
    out += '\'' + words[i] + '\'';
  }
  return out;
}

std::string escaped(std::string_view text, std::size_t max_bytes, Escape which) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : text.substr(0, max_bytes)) {
    const bool escape = c < 0x20 || c == 0x7f || (which == Escape::kNonAscii && c > 0x7f);
    if (escape) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > max_bytes) out += "...";
  return out;
}

}  // namespace xpscale
