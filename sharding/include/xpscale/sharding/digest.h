#pragma once
// The project's one SHA-256 helper (OpenSSL): SigV4 payload hashes, shard and
// manifest checksums, and the runtime's config hash all use it.
#include <string>
#include <string_view>

namespace xpscale {

// Lower-case hex SHA-256 of data.
std::string sha256_hex(std::string_view data);

}  // namespace xpscale
