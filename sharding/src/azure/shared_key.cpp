#include "shared_key.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <map>
#include <vector>

#include "xpscale/sharding/error.h"

namespace xpscale::detail {

namespace {

constexpr char kHex[] = "0123456789ABCDEF";

// encodeURIComponent's unreserved set; "'" is encoded as the SDKs do.
bool unreserved(unsigned char c) {
  return std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '!' || c == '~' ||
         c == '*' || c == '(' || c == ')';
}

std::string encode(std::string_view text, bool keep_slash) {
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (unreserved(c) || (keep_slash && c == '/')) {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string base64_decode(std::string_view text) {
  if (!is_base64(text)) {
    throw ShardingError("azure: the account key is not valid base64 (its value is not shown)");
  }
  std::string out(text.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) throw ShardingError("azure: OpenSSL EVP_DecodeBlock failed on the account key");
  // EVP_DecodeBlock counts the padding as zero bytes.
  std::size_t size = static_cast<std::size_t>(n);
  for (std::size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) --size;
  out.resize(size);
  return out;
}

std::string base64_encode(const unsigned char* data, std::size_t size) {
  std::string out((size + 2) / 3 * 4 + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// The one boundary to OpenSSL's HMAC for Azure (sigv4.cpp has S3's).
std::string hmac_sha256_base64(const std::string& key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
           &size) == nullptr) {
    throw ShardingError("azure: OpenSSL HMAC(EVP_sha256) failed");
  }
  return base64_encode(out, size);
}

// Path and query of an absolute URL (the path "/" when it has none).
std::pair<std::string_view, std::string_view> path_and_query(std::string_view url) {
  std::size_t start = url.find("://");
  start = start == std::string_view::npos ? 0 : start + 3;
  const std::size_t slash = url.find_first_of("/?", start);
  if (slash == std::string_view::npos) return {"/", ""};
  const std::size_t q = url.find('?', slash);
  std::string_view path = url.substr(slash, q == std::string_view::npos ? url.npos : q - slash);
  if (path.empty()) path = "/";
  const std::string_view query = q == std::string_view::npos ? "" : url.substr(q + 1);
  return {path, query.substr(0, query.find('#'))};
}

}  // namespace

std::string azure_encode_path(std::string_view name) { return encode(name, true); }

std::string azure_encode_query(std::string_view value) { return encode(value, false); }

std::string azure_query_string(const HeaderList& query) {
  std::string out;
  for (const auto& [n, v] : query) {
    if (!out.empty()) out += '&';
    out += encode(n, false) + '=' + encode(v, false);
  }
  return out;
}

std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
        hex_value(text[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

bool is_base64(std::string_view key) {
  if (key.empty() || key.size() % 4 != 0) return false;
  std::size_t pad = 0;
  for (std::size_t i = 0; i < key.size(); ++i) {
    const auto c = static_cast<unsigned char>(key[i]);
    if (c == '=') {
      ++pad;
      continue;
    }
    if (pad > 0) return false;  // '=' only at the end
    if (std::isalnum(c) == 0 && c != '+' && c != '/') return false;
  }
  return pad <= 2;
}

SharedKeySignature sign_shared_key(const SharedKeyRequest& request, std::string_view account,
                                   std::string_view base64_key) {
  std::map<std::string, std::string> standard;
  std::vector<std::pair<std::string, std::string>> ms;
  for (const auto& [name, value] : request.headers) {
    std::string n = lower(name);
    if (n.starts_with("x-ms-")) {
      // Values are sent as given; the SDKs trim their start only.
      const std::size_t first = value.find_first_not_of(" \t");
      ms.emplace_back(std::move(n), first == std::string::npos ? "" : value.substr(first));
    } else {
      standard[n] = value;
    }
  }
  // Byte order; Azure's comparer differs from it only for names that differ
  // past a '-' in ways our requests never produce (x-ms-blob-type,
  // x-ms-date, x-ms-range, x-ms-version, ...).
  std::stable_sort(ms.begin(), ms.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  auto header = [&](const char* name) {
    const auto it = standard.find(name);
    return it == standard.end() ? std::string() : it->second;
  };
  std::string content_length = header("content-length");
  if (content_length == "0") content_length.clear();  // since version 2015-02-21

  std::string s = request.method + '\n';
  for (const std::string& v :
       {header("content-encoding"), header("content-language"), content_length,
        header("content-md5"), header("content-type"), header("date"), header("if-modified-since"),
        header("if-match"), header("if-none-match"), header("if-unmodified-since"),
        header("range")}) {
    s += v;
    s += '\n';
  }
  std::string previous;
  for (const auto& [n, v] : ms) {
    if (n == previous) continue;  // the first of repeated names, as the SDKs
    s += n + ':' + v + '\n';
    previous = n;
  }
  const auto [path, query] = path_and_query(request.url);
  s += '/';
  s += account;
  s += path;
  std::map<std::string, std::string> params;
  std::size_t at = 0;
  while (at <= query.size() && !query.empty()) {
    const std::size_t amp = std::min(query.find('&', at), query.size());
    const std::string_view pair = query.substr(at, amp - at);
    const std::size_t eq = pair.find('=');
    // As the SDKs: exactly one '=', a name and a value.
    if (eq != std::string_view::npos && eq > 0 && eq + 1 < pair.size() &&
        pair.find('=', eq + 1) == std::string_view::npos) {
      params[lower(pair.substr(0, eq))] = percent_decode(pair.substr(eq + 1));
    }
    at = amp + 1;
  }
  for (const auto& [n, v] : params) s += '\n' + n + ':' + v;

  SharedKeySignature out;
  out.authorization =
      "SharedKey " + std::string(account) + ':' + hmac_sha256_base64(base64_decode(base64_key), s);
  out.string_to_sign = std::move(s);
  return out;
}

std::string rfc1123_date(std::chrono::system_clock::time_point time) {
  const std::time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday],
                tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

}  // namespace xpscale::detail
