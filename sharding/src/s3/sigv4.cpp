#include "xpscale/sharding/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>
#include <map>

#include "xpscale/sharding/error.h"

namespace xpscale {

namespace {

using Digest = std::array<unsigned char, SHA256_DIGEST_LENGTH>;

std::string hex(const unsigned char* data, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * size, '0');
  for (std::size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 15];
  }
  return out;
}

// The one boundary to OpenSSL's HMAC: a failure here is an OpenSSL fault,
// never a user error, and carries no key material in its message.
Digest hmac_sha256(std::string_view key, std::string_view message) {
  Digest out{};
  unsigned int size = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), out.data(),
           &size) == nullptr) {
    throw ShardingError("sigv4: OpenSSL HMAC(EVP_sha256) failed");
  }
  return out;
}

std::string_view as_view(const Digest& d) {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Trims and collapses runs of spaces to one, as SigV4 canonical headers want.
std::string canonical_value(std::string_view value) {
  std::string out;
  bool space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

}  // namespace

std::string uri_encode(std::string_view text, bool keep_slash) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~' ||
        (keep_slash && c == '/')) {
      out += ch;
    } else {
      out += '%';
      out += kDigits[c >> 4];
      out += kDigits[c & 15];
    }
  }
  return out;
}

std::string canonical_query_string(const HeaderList& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query) {
    encoded.emplace_back(uri_encode(name, false), uri_encode(value, false));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out += '&';
    out += name + '=' + value;
  }
  return out;
}

std::string amz_date(std::chrono::system_clock::time_point time) {
  const std::time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &utc);
  return buf;
}

SigV4Signature sign_v4(const SigV4Request& request, const AwsCredentials& credentials,
                       std::string_view region, std::string_view service, std::string_view date) {
  SigV4Signature sig;
  sig.headers = {{"x-amz-date", std::string(date)},
                 {"x-amz-content-sha256", request.payload_sha256}};
  if (!credentials.session_token.empty()) {
    sig.headers.emplace_back("x-amz-security-token", credentials.session_token);
  }

  // Canonical headers: lower-case names, sorted; repeated names joined by ','.
  std::map<std::string, std::string> headers{{"host", request.host}};
  auto add = [&](const std::string& name, const std::string& value) {
    std::string& slot = headers[lower(canonical_value(name))];
    slot += (slot.empty() ? "" : ",") + canonical_value(value);
  };
  for (const auto& [name, value] : request.headers) add(name, value);
  for (const auto& [name, value] : sig.headers) add(name, value);
  std::string canonical_headers;
  std::string signed_headers;
  for (const auto& [name, value] : headers) {
    canonical_headers += name + ':' + value + '\n';
    signed_headers += (signed_headers.empty() ? "" : ";") + name;
  }

  sig.canonical_request = request.method + '\n' + request.encoded_path + '\n' +
                          canonical_query_string(request.query) + '\n' + canonical_headers + '\n' +
                          signed_headers + '\n' + request.payload_sha256;

  const std::string day(date.substr(0, 8));
  const std::string scope =
      day + '/' + std::string(region) + '/' + std::string(service) + "/aws4_request";
  sig.string_to_sign = "AWS4-HMAC-SHA256\n" + std::string(date) + '\n' + scope + '\n' +
                       sha256_hex(sig.canonical_request);

  const Digest k_date = hmac_sha256("AWS4" + credentials.secret_access_key, day);
  const Digest k_region = hmac_sha256(as_view(k_date), region);
  const Digest k_service = hmac_sha256(as_view(k_region), service);
  const Digest k_signing = hmac_sha256(as_view(k_service), "aws4_request");
  const Digest signature = hmac_sha256(as_view(k_signing), sig.string_to_sign);

  sig.authorization = "AWS4-HMAC-SHA256 Credential=" + credentials.access_key_id + '/' + scope +
                      ", SignedHeaders=" + signed_headers +
                      ", Signature=" + hex(signature.data(), signature.size());
  sig.headers.emplace_back("Authorization", sig.authorization);
  return sig;
}

}  // namespace xpscale
