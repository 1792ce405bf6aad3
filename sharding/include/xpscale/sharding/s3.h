#pragma once
// The object-store Sources: S3 (and S3-compatible servers) and plain
// HTTP(S), both on libcurl's multi interface. See source.h for the contract
// every Source keeps; this header adds their options and factories.
//
// Reads split into parts of part_size bytes fetched max_parallel at a time
// (ranged GETs, each with If-Match on the object's ETag) and delivered in
// order. Concurrent reads of one Source share that budget: a read that
// starts while k - 1 others run gets max(1, max_parallel / k) parts in
// flight, and with 1 fetches its range as a single streamed GET. Every request is retried on 5xx,
// 429/SlowDown, timeouts, refused and reset connections and short bodies, with full-jitter
// exponential backoff (delay ~ uniform(0, min(max_delay, base_delay * 2^attempt))), at most
// retry.max_attempts times and for at most retry.max_total per request; a part resumes at the first
// byte it has not received.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "xpscale/sharding/sigv4.h"
#include "xpscale/sharding/source.h"

namespace xpscale {

struct RetryPolicy {
  int max_attempts = 8;  // per request, the first one included
  std::chrono::milliseconds base_delay{100};
  std::chrono::milliseconds max_delay{5'000};
  // Bound on one request's attempts and waits together; the request fails
  // with its last error when the next attempt would start past it.
  std::chrono::milliseconds max_total{120'000};
  std::chrono::milliseconds connect_timeout{10'000};
  // A transfer that receives nothing for this long is aborted and retried.
  std::chrono::milliseconds stall_timeout{30'000};
  // Bound on one attempt, start to end; 0 for none (a large object's read
  // may take long; stall_timeout catches a dead one).
  std::chrono::milliseconds attempt_timeout{0};
  // Seed of the backoff jitter; 0 draws one from std::random_device.
  std::uint64_t seed = 0;
};

struct TransferOptions {
  std::uint64_t part_size = std::uint64_t{8} << 20;  // bytes per ranged GET
  // Parts in flight per read(). A read buffers at most 2 * max_parallel
  // parts (those that arrive ahead of a slower earlier one).
  unsigned max_parallel = 8;
  RetryPolicy retry;
};

struct S3Options {
  std::string region = "us-east-1";
  // "scheme://host[:port]" of an S3-compatible server; "" means AWS
  // (https://s3.<region>.amazonaws.com, virtual-hosted addressing).
  std::string endpoint;
  // Path-style addressing (http://endpoint/bucket/key); s3_options_from_env
  // turns it on whenever an endpoint is configured.
  bool path_style = false;
  // Empty: requests go unsigned (public buckets).
  AwsCredentials credentials;
  TransferOptions transfer;
  // put() sends objects larger than this as a multipart upload of
  // transfer.part_size parts (at least 5 MiB, S3's minimum).
  std::uint64_t multipart_threshold = std::uint64_t{64} << 20;
  unsigned list_page_size = 1000;  // max-keys of each ListObjectsV2 page
  // The scheme of the URLs this Source reads and lists: "s3", or "gs" for
  // Google Cloud Storage through its S3-interoperable XML API.
  std::string url_scheme = "s3";
  // When set (and credentials empty), each request carries
  // "Authorization: Bearer <token>" instead of a SigV4 signature: GCS with
  // a service-account key (gcs_options_from_env).
  std::function<std::string()> bearer_token;
};

// Configuration the way the AWS CLI and boto3 find it:
// - credentials: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+
//   AWS_SESSION_TOKEN), else the profile AWS_PROFILE (default "default") in
//   AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials), else in
//   AWS_CONFIG_FILE (default ~/.aws/config; "[profile NAME]" sections);
// - region: AWS_REGION > AWS_DEFAULT_REGION > the profile's region >
//   "us-east-1";
// - endpoint: AWS_ENDPOINT_URL_S3 > AWS_ENDPOINT_URL > the profile's
//   "s3 =\n  endpoint_url = ..." > its endpoint_url > AWS.
// Throws ShardingError naming the file and line (never a value) for a
// malformed file, a profile named by AWS_PROFILE that no file has, a key id
// without its secret (or the reverse), or an endpoint that is not an
// http(s) URL.
S3Options s3_options_from_env();

// Google Cloud Storage through its XML API, which speaks S3's protocol to
// HMAC keys (interoperability mode): the S3 Source with GCS's endpoint,
// path-style addressing, SigV4 with the region "auto", and gs:// URLs.
// - credentials: GOOGLE_ACCESS_KEY_ID + GOOGLE_SECRET_ACCESS_KEY, else
//   gs_access_key_id + gs_secret_access_key in the [Credentials] section of
//   gsutil's boto file (BOTO_CONFIG, default ~/.boto), else the
//   service-account key file GOOGLE_APPLICATION_CREDENTIALS (OAuth2 bearer
//   tokens by the JWT grant at its token_uri); none: unsigned requests
//   (public buckets);
// - endpoint: GCS_ENDPOINT_URL (an emulator or proxy) > GCS
//   (https://storage.googleapis.com).
// Throws ShardingError for a key id without its secret (or the reverse), an
// endpoint that is not an http(s) URL, or a GOOGLE_APPLICATION_CREDENTIALS
// file that is not a service-account key (naming the file, never a secret).
S3Options gcs_options_from_env();

// The Source for s3:// URLs (gs:// with gcs_options_from_env()).
// Thread-safe; keep one per process.
std::shared_ptr<Source> make_s3_source(S3Options options = s3_options_from_env());

// The Source for http:// and https:// URLs: stat is HEAD, read is ranged
// GETs (If-Match when the server gave an ETag), put is PUT. list() throws
// ShardingError: HTTP has no listing, so datasets name their shards.
std::shared_ptr<Source> make_http_source(TransferOptions options = {});

}  // namespace xpscale
