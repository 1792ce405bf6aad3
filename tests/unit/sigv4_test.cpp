// SigV4 as xpscale signs it, checked byte for byte against botocore's
// S3SigV4Auth (tests/unit/sigv4_botocore.py, Debian python3-botocore) on
// keys and queries that catch encoding and sorting mistakes.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "xpscale/sharding/sigv4.h"

namespace xpscale {
namespace {

struct Case {
  std::string method = "GET";
  std::string bucket = "xpscale-data";
  std::string key;
  HeaderList params;
  HeaderList headers;
  std::string body;
  AwsCredentials credentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
};

constexpr const char* kHost = "127.0.0.1:9000";
constexpr const char* kRegion = "eu-central-1";
constexpr const char* kDate = "20240229T235959Z";

std::string encoded_path(const Case& c) {
  return "/" + uri_encode(c.bucket, false) + (c.key.empty() ? "" : "/" + uri_encode(c.key, true));
}

SigV4Signature ours(const Case& c) {
  SigV4Request r{c.method, kHost, encoded_path(c), c.params, c.headers, sha256_hex(c.body)};
  return sign_v4(r, c.credentials, kRegion, "s3", kDate);
}

// Runs the botocore script on every case at once (one Python start-up).
nlohmann::json botocore(const std::vector<Case>& cases) {
  nlohmann::json in = nlohmann::json::array();
  for (const Case& c : cases) {
    in.push_back({{"method", c.method},
                  {"scheme", "http"},
                  {"host", kHost},
                  {"bucket", c.bucket},
                  {"key", c.key},
                  {"params", c.params},
                  {"headers", c.headers},
                  {"body", c.body},
                  {"access_key", c.credentials.access_key_id},
                  {"secret_key", c.credentials.secret_access_key},
                  {"token", c.credentials.session_token},
                  {"region", kRegion},
                  {"date", kDate}});
  }
  // Per-test names: ctest runs the tests of this file as parallel processes.
  const std::string stem = testing::TempDir() + "/sigv4_" +
                           testing::UnitTest::GetInstance()->current_test_info()->name() + "_" +
                           std::to_string(::getpid());
  const std::string input = stem + "_cases.json";
  const std::string output = stem + "_botocore.json";
  std::ofstream(input) << in.dump();
  const std::string command =
      std::string("/usr/bin/python3 ") + XPSCALE_SIGV4_SCRIPT + " < " + input + " > " + output;
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  nlohmann::json result = nlohmann::json::parse(std::ifstream(output));
  std::remove(input.c_str());
  std::remove(output.c_str());
  return result;
}

void expect_same_as_botocore(const std::vector<Case>& cases) {
  const nlohmann::json theirs = botocore(cases);
  ASSERT_EQ(theirs.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i) + ", key \"" + cases[i].key + "\"");
    const SigV4Signature sig = ours(cases[i]);
    EXPECT_EQ(encoded_path(cases[i]), theirs[i]["path"].get<std::string>());
    EXPECT_EQ(sig.canonical_request, theirs[i]["canonical_request"].get<std::string>());
    EXPECT_EQ(sig.string_to_sign, theirs[i]["string_to_sign"].get<std::string>());
    EXPECT_EQ(sig.authorization, theirs[i]["authorization"].get<std::string>());
  }
}

TEST(SigV4, KeysWithReservedAndUnicodeCharactersMatchBotocore) {
  std::vector<Case> cases;
  for (const char* key :
       {"plain/train-000000.tar", "with space/a b.tar", "plus+sign", "equals=sign&amp",
        "percent%20literal%", "caf\xc3\xa9/\xe6\x95\xb0\xe6\x8d\xae.tar", "tilde~and_under-dot.",
        "double//slash", "/leading", "trailing/", "quote\"and'apostrophe", "star*paren()!",
        "colon:semi;comma,at@dollar$", "question?hash#"}) {
    Case c;
    c.key = key;
    cases.push_back(c);
  }
  expect_same_as_botocore(cases);
}

TEST(SigV4, ListQueriesWithTokensAndPrefixesMatchBotocore) {
  std::vector<Case> cases;
  for (const char* token : {"", "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=", "a+b/c==",
                            "token with spaces and %"}) {
    for (const char* prefix : {"", "fmnist/train-", "caf\xc3\xa9 dir/", "a+b=c"}) {
      Case c;
      c.params = {{"list-type", "2"}, {"prefix", prefix}, {"max-keys", "1000"}};
      if (*token != '\0') c.params.emplace_back("continuation-token", token);
      cases.push_back(c);
    }
  }
  Case unsorted;  // names that sort differently raw and encoded
  unsorted.params = {{"z", "1"}, {"a b", "2"}, {"a", "3"}, {"A", "4"}, {"a_", "5"}, {"a~", "6"}};
  cases.push_back(unsorted);
  expect_same_as_botocore(cases);
}

TEST(SigV4, SessionTokenBodyAndHeadersMatchBotocore) {
  Case with_token;
  with_token.key = "shards/train-000001.tar";
  with_token.credentials.session_token =
      "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+/=";
  with_token.headers = {{"Range", "bytes=8388608-16777215"},
                        {"If-Match", "\"9b2cf535f27731c974343645a3985328\""}};
  Case put;
  put.method = "PUT";
  put.key = "upload/part one.tar";
  put.body = "the bytes of a small object\n";
  put.params = {{"partNumber", "3"}, {"uploadId", "VXBsb2FkIElE+/="}};
  put.headers = {{"Content-Type", "application/x-tar"}, {"X-Amz-Meta-Note", "  two   spaces  "}};
  Case post = put;
  post.method = "POST";
  post.params = {{"uploads", ""}};
  post.credentials.session_token = "token";
  expect_same_as_botocore({with_token, put, post});
}

TEST(SigV4, UriEncodeKeepsOnlyUnreservedCharacters) {
  EXPECT_EQ(uri_encode("aZ09-._~/ +%", true), "aZ09-._~/%20%2B%25");
  EXPECT_EQ(uri_encode("a/b", false), "a%2Fb");
  EXPECT_EQ(uri_encode("\xc3\xa9", false), "%C3%A9");
}

TEST(SigV4, AuthorizationNeverCarriesTheSecret) {
  Case c;
  c.key = "k";
  const SigV4Signature sig = ours(c);
  EXPECT_EQ(sig.authorization.find(c.credentials.secret_access_key), std::string::npos);
  EXPECT_EQ(sig.canonical_request.find(c.credentials.secret_access_key), std::string::npos);
}

TEST(SigV4, AmzDateIsUtcIso8601Basic) {
  EXPECT_EQ(amz_date(std::chrono::system_clock::time_point(std::chrono::seconds(1709251199))),
            "20240229T235959Z");
}

}  // namespace
}  // namespace xpscale
