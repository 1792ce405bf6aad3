#pragma once
// Where a dataset's shards live: the URL schemes the loader reads.
#include <string>
#include <string_view>

namespace xpscale {

struct Url {
  // "file", "s3", "az", "http" or "https"; always lower case.
  std::string scheme;
  // s3: the bucket; az: the container; http(s): "host" or "host:port" (IPv6 as "[::1]:port");
  // file: empty.
  std::string bucket_or_host;
  // file: the path as written, absolute or relative to the working
  //   directory; never empty.
  // s3: the key or key prefix after "bucket/", without a leading '/'; may
  //   be empty ("s3://bucket" is the whole bucket). az: the same for the
  //   blob name after "container/".
  // http(s): the request target, starting with '/', query string included.
  // No percent-decoding is done: the clients send the path as written.
  std::string path;

  bool operator==(const Url&) const = default;
};

// Parses a dataset or shard address:
//   file:///abs/path, file://rel/path     scheme "file" (no host part:
//                                         "file://rel/path" is the relative
//                                         path "rel/path")
//   file://localhost/abs/path             as file:///abs/path (RFC 8089)
//   /abs/path, rel/path                   plain paths, scheme "file"
//   s3://bucket/key                       bucket and key
//   az://container/blob                   Azure Blob container and blob name
//                                         (the account comes from the
//                                         environment: azure.h)
//   http://host[:port]/path?query, https://...
// The scheme is matched case-insensitively.
// Throws ShardingError, with a message that quotes the URL, for: an empty
// URL or path, a scheme other than these five, "s3:", "az:" or "http:" without
// "//", an empty bucket, container or host, a non-numeric or out-of-range port, or
// credentials ("user:secret@") in the URL; credentials are replaced by
// "***" in the message so that they never reach a log.
Url parse_url(std::string_view text);

// The URL that parse_url maps back to url: parse_url(to_string(u)) == u for
// every u that parse_url returned.
std::string to_string(const Url& url);

}  // namespace xpscale
