#include "xpscale/sharding/url.h"

#include <gtest/gtest.h>

#include <string>

#include "xpscale/sharding/error.h"

namespace xpscale {
namespace {

// The message of the ShardingError that parse_url(text) throws; fails the
// test when it throws nothing.
std::string error_of(std::string_view text) {
  try {
    parse_url(text);
  } catch (const ShardingError& e) {
    return e.what();
  }
  ADD_FAILURE() << "parse_url(\"" << text << "\") did not throw";
  return {};
}

TEST(ParseUrl, FileUrlWithAbsolutePath) {
  EXPECT_EQ(parse_url("file:///data/train-0.tar"), (Url{"file", "", "/data/train-0.tar"}));
}

TEST(ParseUrl, FileUrlWithoutLeadingSlashIsRelative) {
  EXPECT_EQ(parse_url("file://data/train-0.tar"), (Url{"file", "", "data/train-0.tar"}));
}

TEST(ParseUrl, FileUrlOnLocalhostIsAbsolute) {
  EXPECT_EQ(parse_url("file://localhost/data/x.tar"), (Url{"file", "", "/data/x.tar"}));
}

TEST(ParseUrl, PlainPathsAreFiles) {
  EXPECT_EQ(parse_url("/abs/x.tar"), (Url{"file", "", "/abs/x.tar"}));
  EXPECT_EQ(parse_url("rel/x.tar"), (Url{"file", "", "rel/x.tar"}));
  EXPECT_EQ(parse_url("shard:7.tar"), (Url{"file", "", "shard:7.tar"}));
  EXPECT_EQ(parse_url("./odd/a://b"), (Url{"file", "", "./odd/a://b"}));
}

TEST(ParseUrl, S3SplitsBucketAndKey) {
  EXPECT_EQ(parse_url("s3://my-bucket/train/shard-000.tar"),
            (Url{"s3", "my-bucket", "train/shard-000.tar"}));
}

TEST(ParseUrl, S3BucketAloneHasEmptyKey) {
  EXPECT_EQ(parse_url("s3://my-bucket"), (Url{"s3", "my-bucket", ""}));
  EXPECT_EQ(parse_url("s3://my-bucket/"), (Url{"s3", "my-bucket", ""}));
}

TEST(ParseUrl, SchemeIsCaseInsensitive) {
  EXPECT_EQ(parse_url("S3://b/k"), (Url{"s3", "b", "k"}));
  EXPECT_EQ(parse_url("HTTPS://h/p"), (Url{"https", "h", "/p"}));
}

TEST(ParseUrl, HttpKeepsHostPortAndTarget) {
  EXPECT_EQ(parse_url("http://localhost:4568/data/x.tar?v=1"),
            (Url{"http", "localhost:4568", "/data/x.tar?v=1"}));
  EXPECT_EQ(parse_url("https://example.com"), (Url{"https", "example.com", "/"}));
  EXPECT_EQ(parse_url("https://example.com?q"), (Url{"https", "example.com", "/?q"}));
  EXPECT_EQ(parse_url("http://[::1]:8080/x"), (Url{"http", "[::1]:8080", "/x"}));
}

TEST(ParseUrl, GsSplitsBucketAndObjectAsS3) {
  EXPECT_EQ(parse_url("gs://my-bucket/train/shard-000.tar"),
            (Url{"gs", "my-bucket", "train/shard-000.tar"}));
  EXPECT_EQ(parse_url("GS://my-bucket"), (Url{"gs", "my-bucket", ""}));
  EXPECT_EQ(to_string(parse_url("gs://b/x y/z")), "gs://b/x y/z");
  EXPECT_NE(error_of("gs:///key").find("empty bucket"), std::string::npos);
  EXPECT_NE(error_of("gs:bucket/key").find("expected \"gs://\""), std::string::npos);
}

TEST(ParseUrl, UnknownSchemeIsAnErrorNamingTheUrl) {
  const std::string message = error_of("ftp://bucket/key");
  EXPECT_NE(message.find("ftp://bucket/key"), std::string::npos) << message;
  EXPECT_NE(message.find("unsupported scheme \"ftp\""), std::string::npos) << message;
  EXPECT_NE(message.find("gs"), std::string::npos) << message;
}

TEST(ParseUrl, EmptyBucketIsAnError) {
  EXPECT_NE(error_of("s3:///key").find("empty bucket"), std::string::npos);
  EXPECT_NE(error_of("s3://").find("empty bucket"), std::string::npos);
}

TEST(ParseUrl, EmptyHostIsAnError) {
  EXPECT_NE(error_of("http:///x").find("empty host"), std::string::npos);
  EXPECT_NE(error_of("https://:443/x").find("empty host"), std::string::npos);
  EXPECT_NE(error_of("http://[]:80/x").find("empty host"), std::string::npos);
}

TEST(ParseUrl, BadPortIsAnError) {
  EXPECT_NE(error_of("http://h:/x").find("invalid port"), std::string::npos);
  EXPECT_NE(error_of("http://h:http/x").find("invalid port"), std::string::npos);
  EXPECT_NE(error_of("http://h:65536/x").find("invalid port"), std::string::npos);
  EXPECT_NE(error_of("http://[::1/x").find("unterminated IPv6"), std::string::npos);
}

TEST(ParseUrl, EmptyInputsAreErrors) {
  EXPECT_NE(error_of("").find("empty URL"), std::string::npos);
  EXPECT_NE(error_of("file://").find("empty path"), std::string::npos);
}

TEST(ParseUrl, KnownSchemeWithoutSlashesIsATypo) {
  EXPECT_NE(error_of("s3:bucket/key").find("expected \"s3://\""), std::string::npos);
}

TEST(ParseUrl, CredentialsAreRejectedAndRedacted) {
  const std::string message = error_of("https://alice:hunter2@host/x");
  EXPECT_NE(message.find("credentials"), std::string::npos) << message;
  EXPECT_EQ(message.find("hunter2"), std::string::npos) << message;
  EXPECT_NE(message.find("https://***@host/x"), std::string::npos) << message;
  EXPECT_EQ(error_of("s3://KEY:SECRET@bucket/k").find("SECRET"), std::string::npos);
}

TEST(UrlToString, RoundTripsThroughParse) {
  for (const char* text :
       {"file:///a/b", "file://rel/b", "rel/b", "file://localhost", "localhost/x", "s3://b",
        "s3://b/k/", "s3://b//k", "http://h:1/x?y", "https://[::1]/", "file://s3:x"}) {
    const Url url = parse_url(text);
    EXPECT_EQ(parse_url(to_string(url)), url) << text << " -> " << to_string(url);
  }
}

}  // namespace
}  // namespace xpscale
