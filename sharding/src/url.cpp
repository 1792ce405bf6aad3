#include "xpscale/sharding/url.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "xpscale/sharding/error.h"

namespace xpscale {

namespace {

constexpr std::string_view kSeparator = "://";

bool is_known_scheme(std::string_view s) {
  return s == "file" || s == "s3" || s == "gs" || s == "az" || s == "http" || s == "https";
}

// RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
bool is_scheme_syntax(std::string_view s) {
  if (s.empty() || std::isalpha(static_cast<unsigned char>(s[0])) == 0) return false;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '+' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The URL with any "user:secret@" of its authority replaced by "***@", so
// that error messages never carry credentials.
std::string redacted(std::string_view text) {
  const std::size_t sep = text.find(kSeparator);
  if (sep == std::string_view::npos) return std::string(text);
  const std::size_t start = sep + kSeparator.size();
  const std::size_t end = std::min(text.find_first_of("/?#", start), text.size());
  const std::size_t at = text.substr(start, end - start).rfind('@');
  if (at == std::string_view::npos) return std::string(text);
  return std::string(text.substr(0, start)) + "***" + std::string(text.substr(start + at));
}

[[noreturn]] void fail(std::string_view text, const std::string& why) {
  throw ShardingError("invalid URL \"" + redacted(text) + "\": " + why);
}

// Checks "host", "host:port", "[v6]" or "[v6]:port".
void check_authority(std::string_view text, std::string_view authority) {
  std::size_t host_end = authority.find(':');
  bool empty_host = host_end == 0 || authority.empty();
  if (!authority.empty() && authority[0] == '[') {
    host_end = authority.find(']');
    if (host_end == std::string_view::npos) fail(text, "unterminated IPv6 address");
    empty_host = host_end == 1;
    ++host_end;
  }
  if (empty_host) fail(text, "empty host");
  if (host_end >= authority.size()) return;
  const std::string_view port = authority.substr(host_end + 1);
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (authority[host_end] != ':' || port.empty() || ec != std::errc() ||
      end != port.data() + port.size() || value == 0 || value > 65535) {
    fail(text, "invalid port \"" + std::string(authority.substr(host_end)) + "\"");
  }
}

}  // namespace

Url parse_url(std::string_view text) {
  if (text.empty()) fail(text, "empty URL");
  const std::size_t colon = text.find(':');
  const std::string_view prefix = text.substr(0, colon);
  if (colon == std::string_view::npos || !is_scheme_syntax(prefix)) {
    return Url{"file", "", std::string(text)};  // a plain path
  }
  const std::string scheme = lower(prefix);
  if (text.substr(colon, kSeparator.size()) != kSeparator) {
    // "s3:bucket/key" is a typo, not a file named so; other "name:rest"
    // strings are ordinary relative paths.
    if (is_known_scheme(scheme)) fail(text, "expected \"" + scheme + "://\"");
    return Url{"file", "", std::string(text)};
  }
  const std::string_view rest = text.substr(colon + kSeparator.size());

  if (scheme == "file") {
    std::string_view path = rest;
    if (path.starts_with("localhost/")) path.remove_prefix(std::string_view("localhost").size());
    if (path.empty()) fail(text, "empty path");
    return Url{"file", "", std::string(path)};
  }
  // gs://bucket/object and az://container/blob: the same shape as s3://.
  if (scheme == "s3" || scheme == "gs" || scheme == "az") {
    const std::size_t slash = rest.find('/');
    const std::string_view bucket = rest.substr(0, slash);
    if (bucket.empty()) fail(text, scheme == "az" ? "empty container" : "empty bucket");
    if (bucket.find('@') != std::string_view::npos) {
      fail(text, "credentials in URLs are not supported; use the environment or config");
    }
    const std::string_view key =
        slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    return Url{scheme, std::string(bucket), std::string(key)};
  }
  if (scheme == "http" || scheme == "https") {
    const std::size_t end = std::min(rest.find_first_of("/?#"), rest.size());
    const std::string_view authority = rest.substr(0, end);
    if (authority.find('@') != std::string_view::npos) {
      fail(text, "credentials in URLs are not supported; use the environment or config");
    }
    check_authority(text, authority);
    std::string target(rest.substr(end));
    if (!target.starts_with('/')) target.insert(0, "/");
    return Url{scheme, std::string(authority), std::move(target)};
  }
  fail(text, "unsupported scheme \"" + scheme + "\" (supported: file, s3, gs, az, http, https)");
}

std::string to_string(const Url& url) {
  if (url.scheme == "file") {
    // A relative path starting with "localhost/" would read back as
    // absolute in the file:// form; the plain form keeps it relative.
    if (url.path.starts_with("localhost/")) return url.path;
    return "file://" + url.path;
  }
  if (url.scheme == "s3" || url.scheme == "gs" || url.scheme == "az") {
    return url.path.empty() ? url.scheme + "://" + url.bucket_or_host
                            : url.scheme + "://" + url.bucket_or_host + "/" + url.path;
  }
  return url.scheme + "://" + url.bucket_or_host + url.path;
}

}  // namespace xpscale
