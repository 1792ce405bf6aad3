#pragma once
// Azure Storage Shared Key signing and the URL encodings it depends on,
// computed with OpenSSL. Internal to the sharding library.
//
// Written here because no packaged C++ library signs Azure requests (the
// Azure SDK for C++ is not in Debian) and libcurl has no Azure signer.
// tests/integration/azure/azure_signer_test.cpp checks the string to sign
// and the Authorization header byte for byte against @azure/storage-blob's
// own signer (pinned by tests/integration/azure/package-lock.json).
#include <chrono>
#include <string>
#include <string_view>

#include "xpscale/sharding/sigv4.h"  // HeaderList

namespace xpscale::detail {

// A blob name as the path of its URL, encoded as the Azure SDKs encode it
// (JavaScript's encodeURIComponent per '/'-separated segment, and "'" as
// %27): every byte but A-Z a-z 0-9 - _ . ! ~ * ( ) and '/' becomes %XX.
std::string azure_encode_path(std::string_view name);

// A query value as the SDKs encode it: encodeURIComponent ('/' too is
// encoded).
std::string azure_encode_query(std::string_view value);

// "a=1&b=x%20y": the parameters in the order given, names and values
// encoded with azure_encode_query.
std::string azure_query_string(const HeaderList& query);

// %XX sequences decoded (malformed ones kept as they are); '+' stays '+'.
std::string percent_decode(std::string_view text);

struct SharedKeyRequest {
  std::string method;  // "GET", "HEAD", "PUT", ...
  // The URL as sent: scheme://host[:port]/path?query, path and query
  // already encoded.
  std::string url;
  // Every header sent that Shared Key signs: x-ms-* (x-ms-date and
  // x-ms-version among them) and the standard ones (Content-Length,
  // Content-Type, If-Match, Range, ...); names in any case.
  HeaderList headers;
};

struct SharedKeySignature {
  std::string string_to_sign;
  std::string authorization;  // "SharedKey account:base64(HMAC-SHA256)"
};

// Signs request for account with its base64 account key. The
// canonicalized resource is "/account" + the URL's path + one
// "\nname:decoded value" line per query parameter (names lower-cased and
// sorted, parameters without a value left out, as the SDKs do); the
// canonicalized headers are the x-ms-* headers, lower-cased and sorted by
// name. Throws ShardingError (naming nothing secret) when the key is not
// base64.
SharedKeySignature sign_shared_key(const SharedKeyRequest& request, std::string_view account,
                                   std::string_view base64_key);

// True when key is non-empty, valid base64.
bool is_base64(std::string_view key);

// "Sat, 05 Dec 2026 06:33:29 GMT" (RFC 1123, as x-ms-date wants it).
std::string rfc1123_date(std::chrono::system_clock::time_point time);

}  // namespace xpscale::detail
