#include "xpscale/sharding/brace.h"

#include <charconv>
#include <cstdint>
#include <limits>

#include "xpscale/sharding/error.h"

namespace xpscale {

namespace {

// One piece of a pattern: fixed text, or the choices of one brace group.
struct Segment {
  enum class Kind { kText, kList, kRange };
  Kind kind = Kind::kText;
  std::size_t offset = 0;          // of the group's '{'
  std::string text;                // kText
  std::vector<std::string> items;  // kList
  std::uint64_t lo = 0, hi = 0;    // kRange, both included
  std::size_t width = 0;           // kRange: zero-pad to this many digits

  std::uint64_t count() const {
    switch (kind) {
      case Kind::kText:
        return 1;
      case Kind::kList:
        return items.size();
      case Kind::kRange:
        return (lo <= hi ? hi - lo : lo - hi) + 1;  // callers keep it below 2^64
    }
    return 1;
  }

  void append_choice(std::string& out, std::uint64_t index) const {
    switch (kind) {
      case Kind::kText:
        out += text;
        return;
      case Kind::kList:
        out += items[index];
        return;
      case Kind::kRange: {
        const std::uint64_t value = lo <= hi ? lo + index : lo - index;
        char digits[std::numeric_limits<std::uint64_t>::digits10 + 1];
        const auto result = std::to_chars(digits, digits + sizeof digits, value);
        const auto length = static_cast<std::size_t>(result.ptr - digits);
        if (length < width) out.append(width - length, '0');
        out.append(digits, length);
        return;
      }
    }
  }
};

class Expander {
 public:
  Expander(std::string_view pattern, std::size_t max_results)
      : pattern_(pattern), max_results_(max_results) {}

  std::vector<std::string> run() {
    const std::vector<Segment> segments = parse();
    return generate(segments, count(segments));
  }

 private:
  [[noreturn]] void fail(std::size_t offset, const std::string& why) const {
    throw ShardingError("invalid brace pattern \"" + std::string(pattern_) + "\" at offset " +
                        std::to_string(offset) + ": " + why);
  }

  std::vector<Segment> parse() const {
    std::vector<Segment> segments;
    std::string text;  // pending fixed text, merged across single-choice groups
    auto flush_text = [&] {
      if (text.empty()) return;
      Segment& segment = segments.emplace_back();
      segment.text = std::move(text);
      text.clear();
    };
    std::size_t i = 0;
    while (i < pattern_.size()) {
      const std::size_t brace = std::min(pattern_.find_first_of("{}", i), pattern_.size());
      text.append(pattern_.substr(i, brace - i));
      if (brace == pattern_.size()) break;
      if (pattern_[brace] == '}') fail(brace, "unbalanced '}'");
      const std::size_t close = pattern_.find_first_of("{}", brace + 1);
      if (close == std::string_view::npos) fail(brace, "unbalanced '{'");
      if (pattern_[close] == '{') fail(close, "'{' inside a brace group (groups do not nest)");
      Segment group = parse_group(brace, pattern_.substr(brace + 1, close - brace - 1));
      if (group.count() == 1) {
        // {7..7} is fixed text; folding it keeps the number of segments,
        // and so the work per result, small (see the header's promise).
        group.append_choice(text, 0);
      } else {
        flush_text();
        segments.push_back(std::move(group));
      }
      i = close + 1;
    }
    flush_text();
    return segments;
  }

  // body: the text between the '{' at offset open and its '}'.
  Segment parse_group(std::size_t open, std::string_view body) const {
    Segment group;
    group.offset = open;
    if (body.find(',') != std::string_view::npos) {
      group.kind = Segment::Kind::kList;
      std::size_t start = 0;
      for (std::size_t comma; (comma = body.find(',', start)) != std::string_view::npos;
           start = comma + 1) {
        group.items.emplace_back(body.substr(start, comma - start));
      }
      group.items.emplace_back(body.substr(start));
      check_count(open, group.items.size());
      return group;
    }
    const std::size_t dots = body.find("..");
    if (dots == std::string_view::npos) {
      fail(open,
           "brace group \"{" + std::string(body) + "}\" needs ',' (a list) or '..' (a range)");
    }
    const std::string_view lo = body.substr(0, dots);
    const std::string_view hi = body.substr(dots + 2);
    group.kind = Segment::Kind::kRange;
    group.lo = parse_bound(open + 1, lo);
    group.hi = parse_bound(open + 1 + dots + 2, hi);
    // bash's rule: a leading zero on either bound asks for fixed width.
    const auto padded = [](std::string_view b) { return b.size() > 1 && b[0] == '0'; };
    if (padded(lo) || padded(hi)) group.width = std::max(lo.size(), hi.size());
    const std::uint64_t span = group.lo <= group.hi ? group.hi - group.lo : group.lo - group.hi;
    // span + 1 results; compared before adding 1, which could overflow.
    if (span >= max_results_) too_many(open);
    return group;
  }

  std::uint64_t parse_bound(std::size_t offset, std::string_view bound) const {
    if (bound.empty()) fail(offset, "empty range bound");
    for (char c : bound) {
      if (c < '0' || c > '9') {
        fail(offset, "range bound \"" + std::string(bound) + "\" is not a non-negative integer");
      }
    }
    std::uint64_t value = 0;
    const auto result = std::from_chars(bound.data(), bound.data() + bound.size(), value);
    if (result.ec != std::errc()) {
      fail(offset, "range bound \"" + std::string(bound) + "\" is larger than 2^64-1");
    }
    return value;
  }

  void check_count(std::size_t offset, std::uint64_t count) const {
    if (count > max_results_) too_many(offset);
  }

  [[noreturn]] void too_many(std::size_t offset) const {
    fail(offset, "expands to more than " + std::to_string(max_results_) + " results");
  }

  // Number of results, checked against max_results and the memory cap.
  std::uint64_t count(const std::vector<Segment>& segments) const {
    std::uint64_t total = 1;
    for (const Segment& s : segments) {
      // total * count > max_results, without overflowing the product.
      if (s.count() > max_results_ / total) too_many(s.offset);
      total *= s.count();
    }
    if (total > max_results_) too_many(0);  // only when max_results is 0
    // Each result costs at least a std::string; checking here keeps the
    // reserve below from asking for more than the cap.
    if (total > kMaxBraceExpansionBytes / sizeof(std::string)) too_big(segments);
    return total;
  }

  [[noreturn]] void too_big(const std::vector<Segment>& segments) const {
    std::size_t offset = 0;
    for (const Segment& s : segments) {
      if (s.kind != Segment::Kind::kText) {
        offset = s.offset;
        break;
      }
    }
    fail(offset, "the expansion from here needs more than " +
                     std::to_string(kMaxBraceExpansionBytes >> 20) + " MiB");
  }

  std::vector<std::string> generate(const std::vector<Segment>& segments,
                                    std::uint64_t total) const {
    std::vector<std::string> results;
    results.reserve(static_cast<std::size_t>(total));
    std::vector<std::uint64_t> index(segments.size(), 0);  // an odometer
    std::size_t bytes = 0;
    for (std::uint64_t k = 0; k < total; ++k) {
      std::string& out = results.emplace_back();
      for (std::size_t s = 0; s < segments.size(); ++s) segments[s].append_choice(out, index[s]);
      bytes += out.size() + sizeof(std::string);
      if (bytes > kMaxBraceExpansionBytes) too_big(segments);
      // The rightmost group turns fastest, as in bash.
      for (std::size_t s = segments.size(); s-- > 0;) {
        if (++index[s] < segments[s].count()) break;
        index[s] = 0;
      }
    }
    return results;
  }

  std::string_view pattern_;
  std::uint64_t max_results_;
};

}  // namespace

std::vector<std::string> expand_braces(std::string_view pattern, std::size_t max_results) {
  return Expander(pattern, max_results).run();
}

}  // namespace xpscale
