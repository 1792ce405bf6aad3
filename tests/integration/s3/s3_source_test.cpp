// The S3 and HTTP Sources against a real S3-compatible server (s3rver on
// loopback, started by the ctest fixture s3rver) and through the fault
// proxy in front of it (fixture s3proxy). XPSCALE_S3_STATE names the
// fixture's state directory (endpoint, proxy_endpoint).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <stdexcept>
#include <string>

#include "s3_test_util.h"
#include "xpscale/sharding/error.h"
#include "xpscale/sharding/s3.h"

namespace xpscale {
namespace {

using test::error_of;
using test::state_dir;
using test::state_file;

constexpr const char* kBucket = "xpscale-test";  // created by the fixture
constexpr const char* kSecret = "secret-never-shown-7f3a";
constexpr const char* kToken = "token-never-shown-91c2";

// s3rver knows the access key S3RVER; it checks no signature, so any
// secret passes (the signer is checked against botocore instead).
S3Options options(const std::string& endpoint = state_file("endpoint")) {
  S3Options o;
  o.endpoint = endpoint;
  o.path_style = true;
  o.credentials = {"S3RVER", kSecret, kToken};
  o.transfer.retry.seed = 42;
  return o;
}

std::string random_bytes(std::size_t size, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; i += 8) {
    const std::uint64_t v = rng();
    for (std::size_t j = 0; j < 8 && i + j < size; ++j)
      out[i + j] = static_cast<char>(v >> (8 * j));
  }
  return out;
}

Url s3_url(const std::string& key) { return Url{"s3", kBucket, key}; }

std::string read_all(Source& source, const ObjectInfo& info, std::uint64_t offset = 0,
                     std::uint64_t length = UINT64_MAX) {
  std::string out;
  source.read(info, offset, length, [&](const char* data, std::size_t size) {
    out.append(data, size);
    return true;
  });
  return out;
}

void expect_no_secret(const std::string& message) {
  EXPECT_EQ(message.find(kSecret), std::string::npos) << message;
  EXPECT_EQ(message.find(kToken), std::string::npos) << message;
}

TEST(S3Source, PutThenStatAndReadBackKeysWithSpecialCharacters) {
  auto s3 = make_s3_source(options());
  for (const std::string key : {"plain/a.tar", "with space/b c.tar", "plus+equals=percent%",
                                "caf\xc3\xa9/\xe6\x95\xb0.tar", "tilde~x"}) {
    const std::string bytes = random_bytes(1000 + key.size(), key.size());
    s3->put(s3_url(key), bytes);
    const ObjectInfo info = s3->stat(s3_url(key));
    EXPECT_EQ(info.url, "s3://xpscale-test/" + key);
    EXPECT_EQ(info.size, bytes.size());
    EXPECT_FALSE(info.etag.empty());
    EXPECT_EQ(read_all(*s3, info), bytes) << key;
  }
}

TEST(S3Source, ListFollowsContinuationTokensAcrossPages) {
  S3Options o = options();
  o.list_page_size = 2;
  auto s3 = make_s3_source(o);
  std::vector<std::string> expected;
  for (int i = 6; i >= 0; --i) {
    const std::string key = "list/shard-" + std::to_string(i) + ".tar";
    s3->put(s3_url(key), "x" + std::to_string(i));
    expected.insert(expected.begin(), "s3://xpscale-test/" + key);
  }
  s3->put(s3_url("listing-elsewhere/other.tar"), "not under the prefix");
  const std::vector<ObjectInfo> listed = s3->list(s3_url("list/"));
  ASSERT_EQ(listed.size(), expected.size());
  for (std::size_t i = 0; i < listed.size(); ++i) {
    EXPECT_EQ(listed[i].url, expected[i]);
    EXPECT_EQ(listed[i].size, 2u);
    EXPECT_EQ(listed[i].etag, s3->stat(s3_url("list/shard-" + std::to_string(i) + ".tar")).etag);
  }
}

TEST(S3Source, LargeObjectReadsInParallelRangedParts) {
  S3Options o = options();
  o.transfer.part_size = 8 << 20;
  o.transfer.max_parallel = 4;
  o.multipart_threshold = UINT64_MAX;  // one PUT: the reads are under test
  auto s3 = make_s3_source(o);
  const std::string bytes = random_bytes(40 << 20, 40);
  s3->put(s3_url("large/forty.bin"), bytes);
  const ObjectInfo info = s3->stat(s3_url("large/forty.bin"));
  ASSERT_EQ(info.size, bytes.size());
  EXPECT_TRUE(read_all(*s3, info) == bytes);
  // A range that starts and ends inside parts.
  const std::uint64_t offset = (5 << 20) + 3;
  const std::uint64_t length = (17 << 20) + 11;
  EXPECT_TRUE(read_all(*s3, info, offset, length) == bytes.substr(offset, length));
  // A hand-made ObjectInfo (no ETag) is completed by a stat.
  EXPECT_TRUE(read_all(*s3, ObjectInfo{info.url, 0, ""}, bytes.size() - 5) ==
              bytes.substr(bytes.size() - 5));
}

// A long body raises its socket's receive low-water mark (curl_transfer.cpp)
// and must leave it low for the next request on that connection: a
// leftover mark would hold back the next answer's short headers until the
// stall timeout, which here fails the read (one attempt, 1 s).
TEST(S3Source, ConnectionsReusedAfterLongBodiesAnswerShortReads) {
  S3Options o = options();
  o.transfer.part_size = 3 << 20;
  o.transfer.max_parallel = 2;
  o.transfer.retry.max_attempts = 1;
  o.transfer.retry.stall_timeout = std::chrono::milliseconds(1000);
  auto s3 = make_s3_source(o);
  // Not a multiple of the mark, nor of the part size.
  const std::string bytes = random_bytes((7 << 20) + 12345, 7);
  s3->put(s3_url("reuse/long.bin"), bytes);
  const ObjectInfo info = s3->stat(s3_url("reuse/long.bin"));
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(read_all(*s3, info) == bytes);
    for (std::uint64_t at : {std::uint64_t{0}, std::uint64_t{5 << 20}, info.size - 10}) {
      EXPECT_EQ(read_all(*s3, info, at, 10), bytes.substr(at, 10));
    }
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

TEST(S3Source, MultipartPutAssemblesTheObject) {
  S3Options o = options();
  o.multipart_threshold = 6 << 20;
  o.transfer.part_size = 5 << 20;
  auto s3 = make_s3_source(o);
  const std::string bytes = random_bytes((12 << 20) + 17, 12);
  s3->put(s3_url("multipart/twelve.bin"), bytes);
  const ObjectInfo info = s3->stat(s3_url("multipart/twelve.bin"));
  EXPECT_EQ(info.size, bytes.size());
  EXPECT_TRUE(read_all(*s3, info) == bytes);
}

TEST(S3Source, SinkReturningFalseStopsTheReadWithoutError) {
  S3Options o = options();
  o.transfer.part_size = 1 << 20;
  auto s3 = make_s3_source(o);
  s3->put(s3_url("stop/early.bin"), random_bytes(5 << 20, 5));
  const ObjectInfo info = s3->stat(s3_url("stop/early.bin"));
  int calls = 0;
  s3->read(info, 0, UINT64_MAX, [&](const char*, std::size_t) { return ++calls < 2; });
  EXPECT_EQ(calls, 2);
}

TEST(S3Source, ReadPastTheEndIsAnErrorNamingTheUrl) {
  auto s3 = make_s3_source(options());
  s3->put(s3_url("short/ten.bin"), "0123456789");
  const ObjectInfo info = s3->stat(s3_url("short/ten.bin"));
  EXPECT_EQ(read_all(*s3, info, 10, 0), "");
  const std::string what = error_of([&] { read_all(*s3, info, 5, 6); });
  EXPECT_NE(what.find("s3://xpscale-test/short/ten.bin"), std::string::npos) << what;
}

TEST(S3Source, ObjectReplacedBetweenStatAndReadIsDetected) {
  auto s3 = make_s3_source(options());
  s3->put(s3_url("replaced/obj.bin"), random_bytes(4096, 1));
  const ObjectInfo before = s3->stat(s3_url("replaced/obj.bin"));
  s3->put(s3_url("replaced/obj.bin"), random_bytes(4096, 2));
  const std::string what = error_of([&] { read_all(*s3, before); });
  EXPECT_NE(what.find("changed"), std::string::npos) << what;
  EXPECT_NE(what.find("s3://xpscale-test/replaced/obj.bin"), std::string::npos) << what;
}

TEST(S3Source, MissingObjectIs404NamingTheUrl) {
  auto s3 = make_s3_source(options());
  const std::string what = error_of([&] { s3->stat(s3_url("no/such/key.tar")); });
  EXPECT_NE(what.find("s3://xpscale-test/no/such/key.tar"), std::string::npos) << what;
  EXPECT_NE(what.find("no such object"), std::string::npos) << what;
  EXPECT_NE(what.find("404"), std::string::npos) << what;
  expect_no_secret(what);
  const std::string read = error_of([&] {
    read_all(*s3, {"s3://xpscale-test/no/such", 10, "\"e\""});
  });
  EXPECT_NE(read.find("no such object"), std::string::npos) << read;
}

// s3rver answers 403 InvalidAccessKeyId to any access key but S3RVER.
TEST(S3Source, WrongAccessKeyIs403WithoutTheSecret) {
  S3Options o = options();
  o.credentials.access_key_id = "AKIAWRONGKEY";
  auto s3 = make_s3_source(o);
  for (const std::string& what : {error_of([&] { s3->list(s3_url("list/")); }),
                                  error_of([&] { s3->put(s3_url("denied.bin"), "x"); }),
                                  error_of([&] { s3->stat(s3_url("plain/a.tar")); })}) {
    EXPECT_NE(what.find("access denied"), std::string::npos) << what;
    EXPECT_NE(what.find("403"), std::string::npos) << what;
    EXPECT_NE(what.find("s3://xpscale-test/"), std::string::npos) << what;
    expect_no_secret(what);
  }
}

TEST(S3Source, UnreachableEndpointFailsAfterBoundedRetries) {
  // Port 1 (tcpmux) on loopback: nothing listens there, connections are refused.
  S3Options o = options("http://127.0.0.1:1");
  o.transfer.retry.max_attempts = 4;
  o.transfer.retry.base_delay = std::chrono::milliseconds(50);
  o.transfer.retry.connect_timeout = std::chrono::milliseconds(2000);
  auto s3 = make_s3_source(o);
  const auto start = std::chrono::steady_clock::now();
  const std::string what = error_of([&] { s3->stat(s3_url("any.tar")); });
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_NE(what.find("s3://xpscale-test/any.tar"), std::string::npos) << what;
  EXPECT_NE(what.find("gave up after 4 attempts"), std::string::npos) << what;
  expect_no_secret(what);
  // A bound, not a speed test: 4 attempts of at most 2 s plus backoff.
  EXPECT_LT(took, std::chrono::seconds(60));
}

// How many requests the fault proxy has answered with each fault so far
// (its log: one "FAULT METHOD TARGET" line per request).
std::map<std::string, int> proxy_faults(const std::string& name = "proxy") {
  std::ifstream log(state_dir() + "/" + name + ".log");
  std::map<std::string, int> counts;
  for (std::string fault, rest; log >> fault && std::getline(log, rest);) ++counts[fault];
  return counts;
}

// Several whole objects read through the fault proxy (resets, 503
// SlowDown, truncated bodies): every byte arrives once, in order.
TEST(S3Source, RecoversFromInjectedFaults) {
  auto direct = make_s3_source(options());
  S3Options o = options(state_file("proxy_endpoint"));
  o.transfer.part_size = 1 << 20;
  o.transfer.retry.max_attempts = 30;
  o.transfer.retry.base_delay = std::chrono::milliseconds(5);
  o.transfer.retry.max_delay = std::chrono::milliseconds(200);
  auto proxied = make_s3_source(o);
  const auto before = proxy_faults();
  for (int i = 0; i < 6; ++i) {
    const std::string key = "faults/obj-" + std::to_string(i) + ".bin";
    const std::string bytes = random_bytes((std::size_t{1} << 20) * (i + 1) + 333 * i, 100 + i);
    direct->put(s3_url(key), bytes);
    const ObjectInfo info = proxied->stat(s3_url(key));
    ASSERT_EQ(info.size, bytes.size());
    EXPECT_TRUE(read_all(*proxied, info) == bytes) << key;
  }
  EXPECT_EQ(proxied->list(s3_url("faults/")).size(), 6u);
  proxied->put(s3_url("faults/through-proxy.bin"), "written through faults");
  EXPECT_EQ(read_all(*direct, direct->stat(s3_url("faults/through-proxy.bin"))),
            "written through faults");
  // The proxy is seeded: the faults drawn for the first N requests are
  // fixed, and these ~30 requests meet every kind.
  auto after = proxy_faults();
  for (const char* kind : {"reset", "slowdown", "truncate"}) {
    EXPECT_GT(after[kind], before.count(kind) != 0 ? before.at(kind) : 0) << kind;
  }
}

// The "stall" proxy sends part of an answer and then nothing for 30 s (its
// first draws, seeded, include stalls): the stall timeout ends the attempt
// and the part resumes on a fresh connection.
TEST(S3Source, HungTransfersTimeOutAndResume) {
  auto direct = make_s3_source(options());
  S3Options o = options(state_file("stall_endpoint"));
  o.transfer.part_size = 1 << 20;
  o.transfer.retry.stall_timeout = std::chrono::milliseconds(1000);
  o.transfer.retry.base_delay = std::chrono::milliseconds(5);
  auto proxied = make_s3_source(o);
  const std::string bytes = random_bytes((3 << 20) + 7, 77);
  direct->put(s3_url("stall/obj.bin"), bytes);
  const ObjectInfo info = direct->stat(s3_url("stall/obj.bin"));
  EXPECT_TRUE(read_all(*proxied, info) == bytes);
  EXPECT_GE(proxy_faults("stall")["stall"], 1);
}

TEST(S3Source, ExceptionFromTheSinkPropagates) {
  S3Options o = options();
  o.transfer.part_size = 1 << 20;
  auto s3 = make_s3_source(o);
  s3->put(s3_url("sink/throws.bin"), random_bytes(3 << 20, 9));
  const ObjectInfo info = s3->stat(s3_url("sink/throws.bin"));
  EXPECT_THROW(
      s3->read(info, 0, UINT64_MAX,
               [](const char*, std::size_t) -> bool { throw std::logic_error("consumer failed"); }),
      std::logic_error);
}

// s3rver serves objects to anonymous GETs, so it doubles as a web server.
// Google Cloud Storage's XML API speaks S3's protocol to HMAC keys: the S3
// Source configured by gcs_options_from_env (GOOGLE_* keys, GCS_ENDPOINT_URL
// pointed at s3rver here) reads, lists and writes gs:// URLs, and errors
// name them.
std::shared_ptr<Source> gcs_source(const std::string& endpoint, const char* key_id = "S3RVER") {
  setenv("GCS_ENDPOINT_URL", endpoint.c_str(), 1);
  setenv("GOOGLE_ACCESS_KEY_ID", key_id, 1);
  setenv("GOOGLE_SECRET_ACCESS_KEY", kSecret, 1);
  S3Options o = gcs_options_from_env();
  unsetenv("GCS_ENDPOINT_URL");
  unsetenv("GOOGLE_ACCESS_KEY_ID");
  unsetenv("GOOGLE_SECRET_ACCESS_KEY");
  o.list_page_size = 3;
  o.multipart_threshold = 6 << 20;
  o.transfer.part_size = 5 << 20;
  o.transfer.retry.seed = 43;
  o.transfer.retry.max_attempts = 30;  // the proxy faults 30% of requests
  o.transfer.retry.base_delay = std::chrono::milliseconds(5);
  o.transfer.retry.max_delay = std::chrono::milliseconds(200);
  return make_s3_source(o);
}

Url gs_url(const std::string& key) { return Url{"gs", kBucket, key}; }

TEST(GcsSource, PutListPagesRangedAndMultipartReadsOfGsUrls) {
  auto gcs = gcs_source(state_file("endpoint"));
  std::vector<std::string> expected;
  for (int i = 0; i < 7; ++i) {
    const std::string key = "gcs/list/shard " + std::to_string(i) + "+%.tar";
    gcs->put(gs_url(key), "g" + std::to_string(i));
    expected.push_back("gs://xpscale-test/" + key);
  }
  const std::vector<ObjectInfo> listed = gcs->list(gs_url("gcs/list/"));  // 3 pages
  ASSERT_EQ(listed.size(), expected.size());
  for (std::size_t i = 0; i < listed.size(); ++i) {
    EXPECT_EQ(listed[i].url, expected[i]);
    EXPECT_EQ(read_all(*gcs, listed[i]), "g" + std::to_string(i));
  }
  const std::string big = random_bytes((13 << 20) + 5, 21);  // 3 parts up, ranged parts down
  gcs->put(gs_url("gcs/big.bin"), big);
  const ObjectInfo info = gcs->stat(gs_url("gcs/big.bin"));
  EXPECT_EQ(info.url, "gs://xpscale-test/gcs/big.bin");
  EXPECT_EQ(info.size, big.size());
  EXPECT_TRUE(read_all(*gcs, info) == big);
  EXPECT_TRUE(read_all(*gcs, info, 7 << 20, 3 << 20) == big.substr(7 << 20, 3 << 20));
  // The Source of gs:// reads no other scheme.
  const std::string other = error_of([&] { gcs->stat(s3_url("gcs/big.bin")); });
  EXPECT_NE(other.find("only gs:// URLs"), std::string::npos) << other;
}

TEST(GcsSource, ErrorsNameTheGsUrlAndNeverTheSecret) {
  auto gcs = gcs_source(state_file("endpoint"));
  const std::string missing = error_of([&] { gcs->stat(gs_url("gcs/no/such.tar")); });
  EXPECT_NE(missing.find("gs://xpscale-test/gcs/no/such.tar"), std::string::npos) << missing;
  EXPECT_NE(missing.find("404"), std::string::npos) << missing;
  expect_no_secret(missing);
  auto denied = gcs_source(state_file("endpoint"), "GOOGWRONGKEY");
  const std::string what = error_of([&] { denied->list(gs_url("gcs/list/")); });
  EXPECT_NE(what.find("403"), std::string::npos) << what;
  EXPECT_NE(what.find("gs://xpscale-test/gcs/list/"), std::string::npos) << what;
  EXPECT_NE(what.find("GOOGLE_ACCESS_KEY_ID"), std::string::npos) << what;
  EXPECT_EQ(what.find("AWS_"), std::string::npos) << what;
  expect_no_secret(what);
}

TEST(GcsSource, RecoversFromInjectedFaults) {
  auto gcs = gcs_source(state_file("endpoint"));
  const std::string bytes = random_bytes(6 << 20, 31);
  gcs->put(gs_url("gcs/faults.bin"), bytes);
  auto through_proxy = gcs_source(state_file("proxy_endpoint"));
  for (int round = 0; round < 3; ++round) {
    const ObjectInfo info = through_proxy->stat(gs_url("gcs/faults.bin"));
    EXPECT_TRUE(read_all(*through_proxy, info) == bytes) << "round " << round;
  }
}

TEST(HttpSource, StatAndRangedReadsOfAPlainUrl) {
  auto s3 = make_s3_source(options());
  const std::string bytes = random_bytes((3 << 20) + 5, 3);
  s3->put(s3_url("http/object.bin"), bytes);
  TransferOptions t;
  t.part_size = 1 << 20;
  auto http = make_http_source(t);
  const Url url = parse_url(state_file("endpoint") + "/xpscale-test/http/object.bin");
  const ObjectInfo info = http->stat(url);
  EXPECT_EQ(info.size, bytes.size());
  EXPECT_EQ(info.etag, s3->stat(s3_url("http/object.bin")).etag);
  EXPECT_TRUE(read_all(*http, info) == bytes);
  EXPECT_TRUE(read_all(*http, info, 1000, 2 << 20) == bytes.substr(1000, 2 << 20));
  // s3rver takes anonymous PUTs too.
  const Url put_url = parse_url(state_file("endpoint") + "/xpscale-test/http/put.bin");
  http->put(put_url, "put over plain http");
  EXPECT_EQ(read_all(*http, http->stat(put_url)), "put over plain http");
}

TEST(HttpSource, MissingUrlIs404AndListingIsRefused) {
  auto http = make_http_source();
  const Url url = parse_url(state_file("endpoint") + "/xpscale-test/http/none.bin");
  const std::string what = error_of([&] { http->stat(url); });
  EXPECT_NE(what.find(to_string(url)), std::string::npos) << what;
  EXPECT_NE(what.find("404"), std::string::npos) << what;
  EXPECT_NE(error_of([&] { http->list(url); }).find("no listing"), std::string::npos);
}

TEST(HttpSource, RecoversFromInjectedFaults) {
  auto s3 = make_s3_source(options());
  const std::string bytes = random_bytes((4 << 20) + 99, 4);
  s3->put(s3_url("http/faulty.bin"), bytes);
  TransferOptions t;
  t.part_size = 512 << 10;
  t.retry.max_attempts = 30;
  t.retry.base_delay = std::chrono::milliseconds(5);
  t.retry.max_delay = std::chrono::milliseconds(200);
  t.retry.seed = 7;
  auto http = make_http_source(t);
  const Url url = parse_url(state_file("proxy_endpoint") + "/xpscale-test/http/faulty.bin");
  EXPECT_TRUE(read_all(*http, http->stat(url)) == bytes);
}

}  // namespace
}  // namespace xpscale
