#include <charconv>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "xpscale/config/sweep_config.h"

namespace xpscale {
namespace {

std::optional<double> parse_number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || c == '.')) return std::nullopt;
  double v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  return parts;
}

}  // namespace

std::optional<double> parse_duration(const std::string& text) {
  if (text.empty() || text.size() > 32) return std::nullopt;
  // Suffix form: 90s, 15m, 2h, 1d.
  const char unit = text.back();
  const double scale = unit == 's'   ? 1
                       : unit == 'm' ? 60
                       : unit == 'h' ? 3600
                       : unit == 'd' ? 86400
                                     : 0;
  if (scale != 0) {
    auto v = parse_number(text.substr(0, text.size() - 1));
    if (!v || *v <= 0) return std::nullopt;
    return *v * scale;
  }
  // Slurm forms: [D-]HH:MM:SS, MM:SS, or plain seconds.
  double days = 0;
  std::string clock = text;
  if (auto dash = text.find('-'); dash != std::string::npos) {
    auto d = parse_number(text.substr(0, dash));
    if (!d || *d != std::floor(*d)) return std::nullopt;
    days = *d;
    clock = text.substr(dash + 1);
  }
  const auto parts = split(clock, ':');
  if (parts.size() > 3 || (days > 0 && parts.size() < 2)) return std::nullopt;
  double total = days * 86400;
  double weight = 1;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    auto v = parse_number(*it);
    if (!v) return std::nullopt;
    // Only the leading field may exceed 59 ("90:00" is 90 minutes).
    if (parts.size() > 1 && it != parts.rend() - 1 && *v >= 60) return std::nullopt;
    total += *v * weight;
    weight *= 60;
  }
  if (total <= 0) return std::nullopt;
  return total;
}

}  // namespace xpscale
