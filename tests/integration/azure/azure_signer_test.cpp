// Shared Key as xpscale signs it, checked byte for byte against
// @azure/storage-blob's own signer (azure_sdk_signer.js, pinned by
// package-lock.json): the SDK builds and signs each request, and our signer,
// given the SDK's method, URL and headers, must produce the same string to
// sign and Authorization; our URL encoding of blob names and list queries
// must give the SDK's path and the same canonicalized resource.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "azure_test_util.h"
#include "shared_key.h"  // internal to sharding: sharding/src/azure

namespace xpscale::detail {
namespace {

constexpr const char* kAccount = "xpscaleacct";
// Not a real key: 64 bytes, base64.
constexpr const char* kKey =
    "dGhpcyBpcyBub3QgYSByZWFsIGtleSwganVzdCA2NCBieXRlcyBvZiB0ZXN0IGRhdGEgZm9yIHRoZSBzaWduZXI=";
constexpr const char* kContainer = "http://127.0.0.1:10000/xpscaleacct/shards";
constexpr const char* kDate = "Tue, 29 Feb 2028 23:59:59 GMT";

const std::vector<std::string> kNames = {"plain/train-000000.tar",
                                         "with space/a b.tar",
                                         "plus+sign",
                                         "percent%20literal%",
                                         "caf\xc3\xa9/\xe6\x95\xb0\xe6\x8d\xae.tar",
                                         "tilde~and_under-dot.",
                                         "double//slash",
                                         "trailing/x",
                                         "quote\"and'apostrophe",
                                         "star*paren()!",
                                         "colon:semi;comma,at@dollar$",
                                         "question?hash#",
                                         "equals=sign&amp"};

nlohmann::json base_case(const std::string& op) {
  return {{"op", op},
          {"account", kAccount},
          {"key", kKey},
          {"container_url", kContainer},
          {"date", kDate}};
}

std::string path_of(const std::string& url) { return url.substr(0, url.find('?')); }

// Our signature of the request the SDK sent (its Authorization left out).
SharedKeySignature ours(const nlohmann::json& sent, const std::string& url) {
  SharedKeyRequest r{sent["method"], url, {}};
  for (const auto& h : sent["headers"]) {
    if (h[0].get<std::string>() != "Authorization") r.headers.emplace_back(h[0], h[1]);
  }
  return sign_shared_key(r, kAccount, kKey);
}

void expect_same(const nlohmann::json& sent, const std::string& our_url) {
  const SharedKeySignature as_sent = ours(sent, sent["url"]);
  EXPECT_EQ(as_sent.string_to_sign, sent["string_to_sign"].get<std::string>());
  EXPECT_EQ(as_sent.authorization, sent["authorization"].get<std::string>());
  const SharedKeySignature as_we_send = ours(sent, our_url);
  EXPECT_EQ(as_we_send.string_to_sign, sent["string_to_sign"].get<std::string>());
  EXPECT_EQ(as_we_send.authorization, sent["authorization"].get<std::string>());
}

TEST(AzureSharedKey, GetBlobWithRangesOnNamesWithReservedAndUnicodeCharactersMatchesTheSdk) {
  nlohmann::json cases = nlohmann::json::array();
  for (const std::string& name : kNames) {
    nlohmann::json c = base_case("get");
    c["blob"] = name;
    c["offset"] = 8388608;
    c["count"] = 8388608;
    c["if_match"] = "\"0x8DC1A2B3C4D5E6F\"";
    cases.push_back(c);
  }
  nlohmann::json whole = base_case("get");  // no range, no condition
  whole["blob"] = "whole object.tar";
  cases.push_back(whole);
  const nlohmann::json sent = xpscale::test::azure_sdk(cases);
  ASSERT_EQ(sent.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const std::string name = cases[i]["blob"];
    SCOPED_TRACE("blob \"" + name + "\"");
    const std::string our_url = std::string(kContainer) + "/" + azure_encode_path(name);
    EXPECT_EQ(our_url, path_of(sent[i]["url"]));
    expect_same(sent[i], our_url);
  }
}

TEST(AzureSharedKey, GetBlobPropertiesMatchesTheSdk) {
  nlohmann::json cases = nlohmann::json::array();
  for (const char* name : {"shards/train-000001.tar", "a b/c+d%e"}) {
    nlohmann::json c = base_case("properties");
    c["blob"] = name;
    cases.push_back(c);
  }
  const nlohmann::json sent = xpscale::test::azure_sdk(cases);
  ASSERT_EQ(sent.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(sent[i]["method"], "HEAD");
    expect_same(sent[i], std::string(kContainer) + "/" +
                             azure_encode_path(cases[i]["blob"].get<std::string>()));
  }
}

TEST(AzureSharedKey, ListQueriesWithPrefixesAndMarkersMatchTheSdk) {
  nlohmann::json cases = nlohmann::json::array();
  std::vector<std::string> ours_urls;
  for (const char* marker :
       {"",
        "2!96!MDAwMDExIWZtbmlzdC90cmFpbi0wMDAwMTAhMDAwMDI4ITk5OTktMTItMzFUMjM6NTk6NTkuOTk5OTk5OVoh",
        "a+b/c==", "marker with spaces and %"}) {
    for (const char* prefix : {"", "fmnist/train-", "caf\xc3\xa9 dir/", "a+b=c", "50%&x"}) {
      nlohmann::json c = base_case("list");
      c["prefix"] = prefix;
      c["marker"] = marker;
      c["max_results"] = 5000;
      cases.push_back(c);
      // As AzureSource::list builds it: empty values are not sent.
      HeaderList query{{"restype", "container"}, {"comp", "list"}};
      if (*prefix != '\0') query.emplace_back("prefix", prefix);
      if (*marker != '\0') query.emplace_back("marker", marker);
      query.emplace_back("maxresults", "5000");
      ours_urls.push_back(std::string(kContainer) + "?" + azure_query_string(query));
    }
  }
  const nlohmann::json sent = xpscale::test::azure_sdk(cases);
  ASSERT_EQ(sent.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("prefix \"" + cases[i]["prefix"].get<std::string>() + "\", marker \"" +
                 cases[i]["marker"].get<std::string>() + "\"");
    expect_same(sent[i], ours_urls[i]);
  }
}

TEST(AzureSharedKey, PutBlobPutBlockAndPutBlockListMatchTheSdk) {
  nlohmann::json put = base_case("put");
  put["blob"] = "upload/part one.tar";
  put["body"] = "the bytes of a small blob\n";
  nlohmann::json block = base_case("block");
  block["blob"] = "upload/big+blob.tar";
  block["body"] = "a block";
  block["block_id"] = "MDAwMDAwMDAwMDAx";
  nlohmann::json odd_id = block;  // ids whose base64 needs escaping in the query
  odd_id["block_id"] = "Pz8/Pz8+Pj4+Pg==";
  nlohmann::json list = base_case("blocklist");
  list["blob"] = "upload/big+blob.tar";
  list["block_ids"] = {"MDAwMDAwMDAwMDAx", "MDAwMDAwMDAwMDAy"};
  const nlohmann::json cases = {put, block, odd_id, list};
  const nlohmann::json sent = xpscale::test::azure_sdk(cases);
  ASSERT_EQ(sent.size(), cases.size());
  const std::string blob = std::string(kContainer) + "/" + azure_encode_path("upload/big+blob.tar");
  expect_same(sent[0], std::string(kContainer) + "/" + azure_encode_path("upload/part one.tar"));
  expect_same(
      sent[1],
      blob + "?" + azure_query_string({{"comp", "block"}, {"blockid", "MDAwMDAwMDAwMDAx"}}));
  expect_same(
      sent[2],
      blob + "?" + azure_query_string({{"comp", "block"}, {"blockid", "Pz8/Pz8+Pj4+Pg=="}}));
  expect_same(sent[3], blob + "?" + azure_query_string({{"comp", "blocklist"}}));
}

TEST(AzureSharedKey, SignatureNeverCarriesTheKey) {
  const SharedKeySignature sig = sign_shared_key(
      {"GET", std::string(kContainer) + "/k", {{"x-ms-date", kDate}}}, kAccount, kKey);
  EXPECT_EQ(sig.authorization.find(kKey), std::string::npos);
  EXPECT_EQ(sig.string_to_sign.find(kKey), std::string::npos);
  EXPECT_TRUE(sig.authorization.starts_with("SharedKey xpscaleacct:"));
}

TEST(AzureSharedKey, AKeyThatIsNotBase64IsAnErrorThatDoesNotShowIt) {
  const std::string message = xpscale::test::error_of([] {
    sign_shared_key({"GET", kContainer, {}}, kAccount, "not base64 secret!");
  });
  EXPECT_NE(message.find("not valid base64"), std::string::npos) << message;
  EXPECT_EQ(message.find("not base64 secret!"), std::string::npos) << message;
}

TEST(AzureSharedKey, Rfc1123DateIsGmt) {
  EXPECT_EQ(rfc1123_date(std::chrono::system_clock::time_point(std::chrono::seconds(1835481599))),
            "Tue, 29 Feb 2028 23:59:59 GMT");
}

}  // namespace
}  // namespace xpscale::detail
