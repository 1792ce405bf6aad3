#pragma once
// AWS Signature Version 4 for S3 requests, computed with OpenSSL.
//
// Written here rather than left to libcurl because Debian's libcurl 7.88
// (CURLOPT_AWS_SIGV4) signs the query string as given (unsorted, not
// re-encoded) and does not send x-amz-content-sha256, which S3 requires;
// no packaged C++ library signs S3 requests. tests/unit/sigv4_test.cpp
// checks every output byte for byte against botocore's signer.
#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "xpscale/sharding/digest.h"

namespace xpscale {

// Never printed, logged or put in an error message: code that reports on a
// request names the access key id at most.
struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // "" without temporary credentials

  bool empty() const { return access_key_id.empty() && secret_access_key.empty(); }
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct SigV4Request {
  std::string method;        // "GET", "PUT", ...
  std::string host;          // the Host header: "host" or "host:port"
  std::string encoded_path;  // the request path as sent, already URI-encoded
  // Query parameters, NOT encoded: sign_v4 encodes and sorts them. The URL
  // sent must carry canonical_query_string(query).
  HeaderList query;
  // Further headers to sign (range, if-match, content-type, ...), any case.
  HeaderList headers;
  // Lower-case hex SHA-256 of the body, or "UNSIGNED-PAYLOAD".
  std::string payload_sha256;
};

struct SigV4Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string authorization;  // the Authorization header's value
  // Headers to send with the request besides SigV4Request::headers:
  // x-amz-date, x-amz-content-sha256, x-amz-security-token (with a session
  // token) and Authorization.
  HeaderList headers;
};

// RFC 3986 percent-encoding as SigV4 wants it: every byte but A-Z a-z 0-9
// '-' '.' '_' '~' (and '/' when keep_slash) becomes %XX, upper-case hex.
std::string uri_encode(std::string_view text, bool keep_slash);

// "a=1&b=x%20y": query encoded with uri_encode and sorted by name, then
// value, as SigV4 signs it.
std::string canonical_query_string(const HeaderList& query);

// "20130524T000000Z" for time (UTC).
std::string amz_date(std::chrono::system_clock::time_point time);

// Signs request for service ("s3") in region at amz_date ("YYYYMMDDTHHMMSSZ").
// The host header and the x-amz-* headers are always signed.
SigV4Signature sign_v4(const SigV4Request& request, const AwsCredentials& credentials,
                       std::string_view region, std::string_view service,
                       std::string_view amz_date);

}  // namespace xpscale
