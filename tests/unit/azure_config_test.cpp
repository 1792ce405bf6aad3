// Azure Blob addressing and configuration: az:// URLs, which URLs the
// Azure Source serves, and azure_options_from_env reading the variables
// the Azure CLI reads (never echoing a secret in its errors).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "xpscale/sharding/azure.h"
#include "xpscale/sharding/error.h"
#include "xpscale/sharding/url.h"

namespace xpscale {
namespace {

constexpr const char* kVariables[] = {"AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT",
                                      "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"};
constexpr const char* kKey = "c2VjcmV0LWtleS1ieXRlcw==";

class AzureConfig : public testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kVariables) unsetenv(v);
  }
  void TearDown() override { SetUp(); }

  static std::string error_of_env() {
    try {
      azure_options_from_env();
    } catch (const ShardingError& e) {
      return e.what();
    }
    ADD_FAILURE() << "no ShardingError";
    return "";
  }
};

TEST(AzureUrl, AzUrlsNameAContainerAndABlob) {
  EXPECT_EQ(parse_url("az://shards/dir/a b+c.tar"), (Url{"az", "shards", "dir/a b+c.tar"}));
  EXPECT_EQ(parse_url("AZ://shards"), (Url{"az", "shards", ""}));
  EXPECT_EQ(to_string(parse_url("az://shards/dir/x")), "az://shards/dir/x");
  EXPECT_EQ(to_string(parse_url("az://shards")), "az://shards");
}

TEST(AzureUrl, MalformedAzUrlsAreErrors) {
  for (const char* text : {"az://", "az:///blob", "az:shards/x", "az://key@shards/x"}) {
    EXPECT_THROW(parse_url(text), ShardingError) << text;
  }
}

TEST_F(AzureConfig, TheAzureSourceServesAzAndBlobCoreWindowsNetUrls) {
  EXPECT_TRUE(is_azure_url(parse_url("az://c/x")));
  EXPECT_TRUE(is_azure_url(parse_url("https://acct.blob.core.windows.net/c/x")));
  EXPECT_FALSE(is_azure_url(parse_url("https://example.com/acct/c/x")));
  EXPECT_FALSE(is_azure_url(parse_url("http://127.0.0.1:10000/devstoreaccount1/c/x")));
  EXPECT_FALSE(is_azure_url(parse_url("s3://c/x")));
}

TEST_F(AzureConfig, UrlsUnderTheConnectionStringsBlobEndpointGoToAzure) {
  setenv("AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true", 1);
  EXPECT_TRUE(is_azure_url(parse_url("http://127.0.0.1:10000/devstoreaccount1/c/x")));
  EXPECT_FALSE(is_azure_url(parse_url("http://127.0.0.1:10000/other/c/x")));
  EXPECT_FALSE(is_azure_url(parse_url("http://127.0.0.1:10001/devstoreaccount1/c/x")));
}

TEST_F(AzureConfig, ConnectionStringWithAccountKeyAndSuffix) {
  setenv("AZURE_STORAGE_CONNECTION_STRING",
         (std::string("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=") + kKey +
          ";EndpointSuffix=core.chinacloudapi.cn;")
             .c_str(),
         1);
  const AzureOptions o = azure_options_from_env();
  EXPECT_EQ(o.account, "acct");
  EXPECT_EQ(o.account_key, kKey);
  EXPECT_EQ(o.endpoint, "https://acct.blob.core.chinacloudapi.cn");
  EXPECT_EQ(o.sas_token, "");
}

TEST_F(AzureConfig, ConnectionStringBlobEndpointAndSas) {
  setenv("AZURE_STORAGE_CONNECTION_STRING",
         "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;"
         "SharedAccessSignature=?sv=2025-11-05&sig=abc%2B%3D",
         1);
  const AzureOptions o = azure_options_from_env();
  EXPECT_EQ(o.endpoint, "http://127.0.0.1:10000/devstoreaccount1");
  EXPECT_EQ(o.account, "devstoreaccount1");  // from the path-style endpoint
  EXPECT_EQ(o.sas_token, "sv=2025-11-05&sig=abc%2B%3D");
  EXPECT_EQ(o.account_key, "");
}

TEST_F(AzureConfig, DevelopmentStorageIsAzuritesDefaults) {
  setenv("AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true", 1);
  const AzureOptions o = azure_options_from_env();
  EXPECT_EQ(o.account, "devstoreaccount1");
  EXPECT_EQ(o.endpoint, "http://127.0.0.1:10000/devstoreaccount1");
  EXPECT_FALSE(o.account_key.empty());
}

TEST_F(AzureConfig, AccountWithKeyOrSasFromTheirOwnVariables) {
  setenv("AZURE_STORAGE_ACCOUNT", "acct", 1);
  setenv("AZURE_STORAGE_SAS_TOKEN", "?sv=1&sig=x", 1);
  AzureOptions o = azure_options_from_env();
  EXPECT_EQ(o.account, "acct");
  EXPECT_EQ(o.sas_token, "sv=1&sig=x");
  EXPECT_EQ(o.endpoint, "");  // https://acct.blob.core.windows.net
  setenv("AZURE_STORAGE_KEY", kKey, 1);
  o = azure_options_from_env();
  EXPECT_EQ(o.account_key, kKey);
  EXPECT_EQ(o.sas_token, "");  // the key wins
}

TEST_F(AzureConfig, TheConnectionStringWinsOverTheSeparateVariables) {
  setenv("AZURE_STORAGE_ACCOUNT", "other", 1);
  setenv("AZURE_STORAGE_CONNECTION_STRING", "AccountName=acct;AccountKey=c2VjcmV0", 1);
  EXPECT_EQ(azure_options_from_env().account, "acct");
}

TEST_F(AzureConfig, AKeyWithoutAnAccountIsAnError) {
  setenv("AZURE_STORAGE_KEY", kKey, 1);
  const std::string message = error_of_env();
  EXPECT_NE(message.find("AZURE_STORAGE_ACCOUNT"), std::string::npos) << message;
  EXPECT_EQ(message.find(kKey), std::string::npos) << message;
}

TEST_F(AzureConfig, AKeyThatIsNotBase64IsAnErrorThatDoesNotShowIt) {
  setenv("AZURE_STORAGE_ACCOUNT", "acct", 1);
  setenv("AZURE_STORAGE_KEY", "s3cr3t-not-base64!", 1);
  const std::string message = error_of_env();
  EXPECT_NE(message.find("AZURE_STORAGE_KEY"), std::string::npos) << message;
  EXPECT_EQ(message.find("s3cr3t"), std::string::npos) << message;
}

TEST_F(AzureConfig, AMalformedConnectionStringNamesTheElementNotItsText) {
  setenv("AZURE_STORAGE_CONNECTION_STRING", "AccountName=acct;s3cr3tWithoutEquals", 1);
  const std::string message = error_of_env();
  EXPECT_NE(message.find("element 2"), std::string::npos) << message;
  EXPECT_EQ(message.find("s3cr3t"), std::string::npos) << message;
}

TEST_F(AzureConfig, ABlobEndpointThatIsNoHttpUrlIsAnError) {
  setenv("AZURE_STORAGE_CONNECTION_STRING", "BlobEndpoint=ftp://host/acct", 1);
  EXPECT_NE(error_of_env().find("BlobEndpoint"), std::string::npos);
}

}  // namespace
}  // namespace xpscale
