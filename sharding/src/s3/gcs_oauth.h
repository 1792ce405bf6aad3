#pragma once
// Google service-account keys (GOOGLE_APPLICATION_CREDENTIALS) for gs://:
// an OAuth2 access token got by the JWT bearer grant (RFC 7523): a JWT of
// the key's client_email, the devstorage scope and the key's token_uri,
// signed RS256 with its private key (OpenSSL), exchanged at token_uri, and
// sent as "Authorization: Bearer" on GCS's XML API. Tokens are renewed 5
// minutes (or half their lifetime, when shorter) before they expire.
#include <functional>
#include <string>

namespace xpscale::detail {

// A thread-safe source of bearer tokens for the key file at path. Throws
// ShardingError naming the file (never its secrets) when it is not a
// service-account key; a failed exchange throws when a token is asked for.
std::function<std::string()> gcs_service_account_tokens(const std::string& path);

// The JWT assertion for the key's fields at the time `now` (seconds since
// the epoch); exposed for tests.
std::string gcs_jwt_assertion(const std::string& client_email, const std::string& private_key_pem,
                              const std::string& private_key_id, const std::string& token_uri,
                              long long now);

}  // namespace xpscale::detail
