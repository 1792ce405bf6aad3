// The Azure Blob Source against Azurite (fixture azurite: an account with a
// key made up per run, containers "shards" and "loader"; XPSCALE_AZURE_STATE
// names its state directory): put, list past one page, stat, ranged and
// parallel reads, SAS tokens, and the errors a user meets (wrong key,
// missing blob or container, a blob replaced mid-read), which name the URL
// and the account and never a secret.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "azure_test_util.h"
#include "xpscale/sharding/azure.h"
#include "xpscale/sharding/error.h"

namespace xpscale {
namespace {

using test::azure_state;
using test::error_of;

AzureOptions direct() {
  AzureOptions o;
  o.account = azure_state("account");
  o.account_key = azure_state("key");
  o.endpoint = azure_state("endpoint");
  o.transfer.retry.base_delay = std::chrono::milliseconds(10);
  return o;
}

std::string bytes_of(std::size_t size, unsigned seed) {
  std::string out(size, '\0');
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (char& c : out) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return out;
}

std::string read_all(Source& s, const ObjectInfo& info, std::uint64_t offset = 0,
                     std::uint64_t length = UINT64_MAX) {
  std::string out;
  s.read(info, offset, length, [&](const char* d, std::size_t n) {
    out.append(d, n);
    return true;
  });
  return out;
}

TEST(AzureSource, PutStatAndReadBackBlobsWithAwkwardNames) {
  auto az = make_azure_source(direct());
  for (const std::string name :
       {"names/a b+c%d.bin", "names/caf\xc3\xa9 \xe6\x95\xb0\xe6\x8d\xae.bin",
        "names/quote'paren(star)*!~.bin", "names/semi;colon:at@eq=amp&.bin"}) {
    SCOPED_TRACE(name);
    const std::string bytes = bytes_of(1000 + name.size(), static_cast<unsigned>(name.size()));
    const Url url = parse_url("az://shards/" + name);
    az->put(url, bytes);
    const ObjectInfo info = az->stat(url);
    EXPECT_EQ(info.url, "az://shards/" + name);
    EXPECT_EQ(info.size, bytes.size());
    EXPECT_TRUE(info.etag.starts_with('"')) << info.etag;
    EXPECT_EQ(read_all(*az, info), bytes);
    EXPECT_EQ(read_all(*az, info, 17, 100), bytes.substr(17, 100));
  }
}

TEST(AzureSource, ListsPastOnePageInNameOrder) {
  AzureOptions o = direct();
  o.list_page_size = 7;  // 20 blobs: three pages, two markers
  auto az = make_azure_source(o);
  std::vector<std::string> expected;
  for (int i = 19; i >= 0; --i) {
    const std::string url = "az://shards/paged/blob-" + std::to_string(100 + i);
    az->put(parse_url(url), std::string(static_cast<std::size_t>(i + 1), 'x'));
    expected.insert(expected.begin(), url);
  }
  az->put(parse_url("az://shards/paged-not/other"), "x");  // shares the text, not the prefix
  const std::vector<ObjectInfo> listed = az->list(parse_url("az://shards/paged/"));
  std::vector<std::string> urls;
  for (const ObjectInfo& info : listed) urls.push_back(info.url);
  EXPECT_EQ(urls, expected);
  ASSERT_EQ(listed.size(), 20u);
  EXPECT_EQ(listed[0].size, 1u);
  EXPECT_FALSE(listed[0].etag.empty());
  // The listed ETag is the one stat gives (If-Match uses it).
  EXPECT_EQ(listed[3].etag, az->stat(parse_url(listed[3].url)).etag);
}

TEST(AzureSource, ParallelRangedReadsOfABlobUploadedInBlocks) {
  AzureOptions o = direct();
  o.block_threshold = 1 << 20;  // Put Block + Put Block List
  o.transfer.part_size = 256 << 10;
  o.transfer.max_parallel = 6;
  auto az = make_azure_source(o);
  const std::string bytes = bytes_of((3 << 20) + 12345, 7);
  const Url url = parse_url("az://shards/big/blocks.bin");
  az->put(url, bytes);
  const ObjectInfo info = az->stat(url);
  ASSERT_EQ(info.size, bytes.size());
  EXPECT_EQ(read_all(*az, info), bytes);
  EXPECT_EQ(read_all(*az, info, 300000, 1500000), bytes.substr(300000, 1500000));
  std::string into(1 << 20, '\0');
  az->read_into(info, 777, into.size(), into.data());
  EXPECT_EQ(into, bytes.substr(777, into.size()));
  // Reads of a hand-made ObjectInfo (no ETag) ask for the properties first.
  EXPECT_EQ(read_all(*az, {"az://shards/big/blocks.bin", 0, ""}, 5, 10), bytes.substr(5, 10));
}

TEST(AzureSource, HttpsStyleUrlsUnderTheEndpointReadTheSameBlobs) {
  auto az = make_azure_source(direct());
  az->put(parse_url("az://shards/http/a b.bin"), "hello azure");
  const std::string base = azure_state("endpoint") + "/shards/http/";
  const std::vector<ObjectInfo> listed = az->list(parse_url(base));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].url, base + "a%20b.bin");
  EXPECT_EQ(read_all(*az, listed[0]), "hello azure");
}

TEST(AzureSource, WrongKeyIsAccessDeniedNamingTheAccountNeverTheKey) {
  AzureOptions o = direct();
  o.account_key = "d3Jvbmcta2V5LWZvci10aGUtdGVzdC1hY2NvdW50LTAxMjM0NTY3ODk=";
  auto az = make_azure_source(o);
  for (const auto& attempt : std::vector<std::function<void()>>{
           [&] { az->stat(parse_url("az://shards/names/a b+c%d.bin")); },
           [&] { az->list(parse_url("az://shards/paged/")); },
           [&] { az->put(parse_url("az://shards/denied.bin"), "x"); }}) {
    const std::string what = error_of(attempt);
    EXPECT_NE(what.find("access denied (HTTP 403"), std::string::npos) << what;
    EXPECT_NE(what.find("\"" + o.account + "\""), std::string::npos) << what;
    EXPECT_NE(what.find("AZURE_STORAGE_KEY"), std::string::npos) << what;
    EXPECT_NE(what.find("az://shards/"), std::string::npos) << what;
    EXPECT_EQ(what.find(o.account_key), std::string::npos) << what;
    EXPECT_EQ(what.find(azure_state("key")), std::string::npos) << what;
  }
}

TEST(AzureSource, MissingBlobAndContainerAreNotFoundErrorsNamingTheUrl) {
  auto az = make_azure_source(direct());
  try {
    az->stat(parse_url("az://shards/no/such blob.bin"));
    ADD_FAILURE() << "no error";
  } catch (const ObjectNotFound& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("az://shards/no/such blob.bin: no such blob (HTTP 404"), std::string::npos)
        << what;
  }
  const std::string what = error_of([&] { az->list(parse_url("az://nocontainer/x")); });
  EXPECT_NE(what.find("az://nocontainer/x: no such container (HTTP 404 ContainerNotFound"),
            std::string::npos)
      << what;
}

TEST(AzureSource, ABlobReplacedMidReadIsAnErrorNamingIt) {
  auto az = make_azure_source(direct());
  const Url url = parse_url("az://shards/replaced.bin");
  const std::string first = bytes_of(400 << 10, 1);
  az->put(url, first);
  const ObjectInfo info = az->stat(url);
  EXPECT_EQ(read_all(*az, info, 0, 64 << 10), first.substr(0, 64 << 10));
  az->put(url, bytes_of(400 << 10, 2));  // between two reads of the loader
  const std::string what = error_of([&] { read_all(*az, info, 64 << 10, 64 << 10); });
  EXPECT_NE(what.find("az://shards/replaced.bin"), std::string::npos) << what;
  EXPECT_NE(what.find("changed"), std::string::npos) << what;
  EXPECT_NE(what.find("412"), std::string::npos) << what;
}

TEST(AzureSource, ASasTokenReadsListsAndWritesAndNeverShowsItsSignature) {
  nlohmann::json c = {{"op", "sas"},
                      {"account", azure_state("account")},
                      {"key", azure_state("key")},
                      {"expires", "2099-01-01T00:00:00Z"},
                      {"version", "2025-11-05"}};
  const std::string sas = test::azure_sdk(nlohmann::json::array({c}))[0]["sas"];
  AzureOptions o = direct();
  o.account_key.clear();
  o.sas_token = sas;
  auto az = make_azure_source(o);
  az->put(parse_url("az://shards/sas/x.bin"), "by SAS");
  const auto listed = az->list(parse_url("az://shards/sas/"));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(read_all(*az, listed[0]), "by SAS");
  // A SAS whose signature is wrong: 403, with neither signature in the text.
  const std::string sig = sas.substr(sas.find("sig=") + 4);
  o.sas_token = sas.substr(0, sas.find("sig=") + 4) + "AAAA" + sig.substr(4);
  auto bad = make_azure_source(o);
  const std::string what = error_of([&] { bad->list(parse_url("az://shards/sas/")); });
  EXPECT_NE(what.find("HTTP 403"), std::string::npos) << what;
  EXPECT_NE(what.find("AZURE_STORAGE_SAS_TOKEN"), std::string::npos) << what;
  EXPECT_EQ(what.find(sig), std::string::npos) << what;
  EXPECT_EQ(what.find(o.sas_token), std::string::npos) << what;
}

// Through the fault proxy (resets, 503s, truncated bodies): every request
// kind is retried and the bytes come back exact.
TEST(AzureSource, PutListAndReadThroughInjectedFaults) {
  AzureOptions o = direct();
  o.endpoint = azure_state("proxy_endpoint");
  o.transfer.part_size = 32 << 10;
  o.transfer.max_parallel = 4;
  o.list_page_size = 5;
  auto az = make_azure_source(o);
  std::vector<std::string> blobs;
  for (int i = 0; i < 12; ++i) {
    blobs.push_back(bytes_of(100000 + 999 * i, 100 + i));
    az->put(parse_url("az://shards/faults/" + std::to_string(10 + i)), blobs.back());
  }
  const auto listed = az->list(parse_url("az://shards/faults/"));
  ASSERT_EQ(listed.size(), blobs.size());
  for (std::size_t i = 0; i < listed.size(); ++i) EXPECT_EQ(read_all(*az, listed[i]), blobs[i]);
}

// open_source() routes az:// and URLs under the connection string's
// BlobEndpoint to the Azure Source configured from the environment.
TEST(AzureSource, OpenSourceReadsAzUrlsConfiguredByAConnectionString) {
  setenv("AZURE_STORAGE_CONNECTION_STRING",
         ("AccountName=" + azure_state("account") + ";AccountKey=" + azure_state("key") +
          ";BlobEndpoint=" + azure_state("endpoint") + "/")
             .c_str(),
         1);
  auto az = open_source(parse_url("az://shards/env/x.bin"));
  az->put(parse_url("az://shards/env/x.bin"), "via env");
  const Url http = parse_url(azure_state("endpoint") + "/shards/env/x.bin");
  EXPECT_EQ(open_source(http), az);
  EXPECT_EQ(read_all(*az, az->stat(http)), "via env");
}

}  // namespace
}  // namespace xpscale
