// s3_options_from_env: the AWS environment variables and shared files, in
// the order the AWS CLI and boto3 read them.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "xpscale/sharding/error.h"
#include "xpscale/sharding/s3.h"

namespace xpscale {
namespace {

constexpr const char* kVariables[] = {
    "AWS_ACCESS_KEY_ID",           "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
    "AWS_DEFAULT_REGION",          "AWS_ENDPOINT_URL_S3",   "AWS_ENDPOINT_URL",  "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"};

// Every test starts from an environment without AWS_* and with both shared
// files pointing at (initially absent) files of its own.
class AwsConfig : public testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kVariables) unsetenv(v);
    const std::string dir = testing::TempDir();
    const std::string name = testing::UnitTest::GetInstance()->current_test_info()->name();
    credentials_ = dir + "/" + name + ".credentials";
    config_ = dir + "/" + name + ".config";
    std::remove(credentials_.c_str());
    std::remove(config_.c_str());
    setenv("AWS_SHARED_CREDENTIALS_FILE", credentials_.c_str(), 1);
    setenv("AWS_CONFIG_FILE", config_.c_str(), 1);
  }
  void TearDown() override {
    for (const char* v : kVariables) unsetenv(v);
  }
  void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

  std::string credentials_;
  std::string config_;
};

TEST_F(AwsConfig, DefaultsWithoutAnything) {
  const S3Options o = s3_options_from_env();
  EXPECT_TRUE(o.credentials.empty());
  EXPECT_EQ(o.region, "us-east-1");
  EXPECT_EQ(o.endpoint, "");
  EXPECT_FALSE(o.path_style);
}

TEST_F(AwsConfig, EnvironmentCredentialsWinOverFiles) {
  write(credentials_,
        "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = filesecret\n");
  setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
  setenv("AWS_SESSION_TOKEN", "envtoken", 1);
  const S3Options o = s3_options_from_env();
  EXPECT_EQ(o.credentials.access_key_id, "ENVKEY");
  EXPECT_EQ(o.credentials.secret_access_key, "envsecret");
  EXPECT_EQ(o.credentials.session_token, "envtoken");
}

TEST_F(AwsConfig, ProfileFromCredentialsAndConfigFiles) {
  write(credentials_,
        "# comment\n[default]\naws_access_key_id = D\naws_secret_access_key = d\n\n"
        "[lab]\naws_access_key_id = LABKEY\naws_secret_access_key = lab/secret+=\n"
        "aws_session_token = labtoken\n");
  write(config_,
        "[default]\nregion = us-west-2\n[profile lab]\nregion = eu-west-3\n"
        "s3 =\n  endpoint_url = http://127.0.0.1:4568/\n  addressing_style = path\n");
  setenv("AWS_PROFILE", "lab", 1);
  const S3Options o = s3_options_from_env();
  EXPECT_EQ(o.credentials.access_key_id, "LABKEY");
  EXPECT_EQ(o.credentials.secret_access_key, "lab/secret+=");
  EXPECT_EQ(o.credentials.session_token, "labtoken");
  EXPECT_EQ(o.region, "eu-west-3");
  EXPECT_EQ(o.endpoint, "http://127.0.0.1:4568");
  EXPECT_TRUE(o.path_style);
}

TEST_F(AwsConfig, CredentialsInConfigFileWhenCredentialsFileHasNone) {
  write(config_, "[profile other]\naws_access_key_id = CFGKEY\naws_secret_access_key = cfg\n");
  setenv("AWS_PROFILE", "other", 1);
  const S3Options o = s3_options_from_env();
  EXPECT_EQ(o.credentials.access_key_id, "CFGKEY");
}

TEST_F(AwsConfig, RegionAndEndpointPrecedence) {
  write(config_, "[default]\nregion = from-file\nendpoint_url = http://file:1\n");
  EXPECT_EQ(s3_options_from_env().region, "from-file");
  EXPECT_EQ(s3_options_from_env().endpoint, "http://file:1");
  setenv("AWS_DEFAULT_REGION", "from-default", 1);
  EXPECT_EQ(s3_options_from_env().region, "from-default");
  setenv("AWS_REGION", "from-region", 1);
  EXPECT_EQ(s3_options_from_env().region, "from-region");
  setenv("AWS_ENDPOINT_URL", "http://general:2", 1);
  EXPECT_EQ(s3_options_from_env().endpoint, "http://general:2");
  setenv("AWS_ENDPOINT_URL_S3", "https://s3only:3", 1);
  EXPECT_EQ(s3_options_from_env().endpoint, "https://s3only:3");
}

TEST_F(AwsConfig, UnknownProfileIsAnErrorNamingIt) {
  setenv("AWS_PROFILE", "nosuch", 1);
  try {
    s3_options_from_env();
    FAIL() << "no error";
  } catch (const ShardingError& e) {
    EXPECT_NE(std::string(e.what()).find("\"nosuch\""), std::string::npos) << e.what();
  }
}

TEST_F(AwsConfig, KeyIdWithoutSecretIsAnError) {
  setenv("AWS_ACCESS_KEY_ID", "ONLYKEY", 1);
  EXPECT_THROW(s3_options_from_env(), ShardingError);
}

TEST_F(AwsConfig, MalformedFileNamesFileAndLineButNotItsText) {
  write(credentials_, "[default]\naws_access_key_id = K\nthis line is the-secret-value\n");
  try {
    s3_options_from_env();
    FAIL() << "no error";
  } catch (const ShardingError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(credentials_ + ":3:"), std::string::npos) << what;
    EXPECT_EQ(what.find("the-secret-value"), std::string::npos) << what;
  }
}

TEST_F(AwsConfig, EndpointMustBeHttp) {
  setenv("AWS_ENDPOINT_URL", "ftp://host", 1);
  EXPECT_THROW(s3_options_from_env(), ShardingError);
}

// gcs_options_from_env: HMAC keys from GOOGLE_* or gsutil's boto file,
// GCS's endpoint unless GCS_ENDPOINT_URL names another.
constexpr const char* kGcsVariables[] = {"GOOGLE_ACCESS_KEY_ID", "GOOGLE_SECRET_ACCESS_KEY",
                                         "BOTO_CONFIG", "GOOGLE_APPLICATION_CREDENTIALS",
                                         "GCS_ENDPOINT_URL"};

class GcsConfig : public testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kGcsVariables) unsetenv(v);
    boto_ = testing::TempDir() + "/" +
            testing::UnitTest::GetInstance()->current_test_info()->name() + ".boto";
    std::remove(boto_.c_str());
    setenv("BOTO_CONFIG", boto_.c_str(), 1);
  }
  void TearDown() override {
    for (const char* v : kGcsVariables) unsetenv(v);
  }
  void write_boto(const std::string& text) { std::ofstream(boto_) << text; }
  std::string boto_;
};

TEST_F(GcsConfig, DefaultsAreGcsXmlApiUnsigned) {
  const S3Options o = gcs_options_from_env();
  EXPECT_EQ(o.url_scheme, "gs");
  EXPECT_EQ(o.endpoint, "https://storage.googleapis.com");
  EXPECT_TRUE(o.path_style);
  EXPECT_EQ(o.region, "auto");
  EXPECT_TRUE(o.credentials.empty());
}

TEST_F(GcsConfig, EnvironmentKeysWinOverTheBotoFile) {
  write_boto("[Credentials]\ngs_access_key_id = GOOGFILE\ngs_secret_access_key = filesecret\n");
  EXPECT_EQ(gcs_options_from_env().credentials.access_key_id, "GOOGFILE");
  EXPECT_EQ(gcs_options_from_env().credentials.secret_access_key, "filesecret");
  setenv("GOOGLE_ACCESS_KEY_ID", "GOOGENV", 1);
  setenv("GOOGLE_SECRET_ACCESS_KEY", "envsecret", 1);
  const S3Options o = gcs_options_from_env();
  EXPECT_EQ(o.credentials.access_key_id, "GOOGENV");
  EXPECT_EQ(o.credentials.secret_access_key, "envsecret");
  EXPECT_EQ(o.credentials.session_token, "");
}

// configparser, which gsutil and botocore read their files with, takes
// "key: value" as well as "key = value".
TEST_F(GcsConfig, BotoFileLinesWithColonsReadAsConfigparserDoes) {
  write_boto("[Credentials]\ngs_access_key_id: GOOGCOLON\ngs_secret_access_key : a=b:c\n");
  const S3Options o = gcs_options_from_env();
  EXPECT_EQ(o.credentials.access_key_id, "GOOGCOLON");
  EXPECT_EQ(o.credentials.secret_access_key, "a=b:c");
}

TEST_F(GcsConfig, BotoFileWithOtherSectionsAndComments) {
  write_boto(
      "# gsutil config\n[Boto]\nhttps_validate_certificates = True\n\n[Credentials]\n"
      "gs_access_key_id = GOOG1\ngs_secret_access_key = s1\n[GSUtil]\nparallel = 4\n");
  const S3Options o = gcs_options_from_env();
  EXPECT_EQ(o.credentials.access_key_id, "GOOG1");
  EXPECT_EQ(o.credentials.secret_access_key, "s1");
}

TEST_F(GcsConfig, KeyIdWithoutSecretIsAnErrorNamingWhere) {
  setenv("GOOGLE_ACCESS_KEY_ID", "GOOGENV", 1);
  try {
    gcs_options_from_env();
    FAIL() << "no error";
  } catch (const ShardingError& e) {
    EXPECT_NE(std::string(e.what()).find("GOOGLE_ACCESS_KEY_ID"), std::string::npos) << e.what();
  }
  unsetenv("GOOGLE_ACCESS_KEY_ID");
  write_boto("[Credentials]\ngs_secret_access_key = only-the-secret-4e1\n");
  try {
    gcs_options_from_env();
    FAIL() << "no error";
  } catch (const ShardingError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(boto_), std::string::npos) << m;
    EXPECT_EQ(m.find("only-the-secret-4e1"), std::string::npos) << m;
  }
}

// GOOGLE_APPLICATION_CREDENTIALS is read only without an HMAC key, and a
// file that is no service-account key is an error naming it, never its
// secrets (the token exchange itself is tested against a token endpoint in
// tests/integration/s3).
TEST_F(GcsConfig, KeyFilesThatAreNoServiceAccountKeyAreErrorsNamingThem) {
  const std::string dir = testing::TempDir();
  const std::string user = dir + "/gcs_user.json", garbled = dir + "/gcs_garbled.json",
                    bad_pem = dir + "/gcs_bad_pem.json";
  std::ofstream(user) << R"({"type": "authorized_user", "client_secret": "cs-never-shown-77"})";
  std::ofstream(garbled) << "not json";
  std::ofstream(bad_pem) << R"({"type": "service_account", "client_email": "a@b",
                               "private_key": "-----BEGIN PRIVATE KEY-----\npk-never-shown-12\n"})";
  // An encrypted key is an error, not a passphrase prompt on the
  // terminal; a key that is not RSA cannot sign RS256.
  const std::string encrypted = dir + "/gcs_encrypted.json", ec = dir + "/gcs_ec.json";
  for (const auto& [path, command] :
       {std::pair{encrypted,
                  "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -aes256 "
                  "-pass pass:never-shown-pass"},
        {ec, "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256"}}) {
    std::string pem;
    FILE* out = popen(command, "r");
    ASSERT_NE(out, nullptr);
    char buf[4096];
    for (std::size_t n; (n = fread(buf, 1, sizeof buf, out)) > 0;) pem.append(buf, n);
    ASSERT_EQ(pclose(out), 0) << command;
    nlohmann::json key = {{"type", "service_account"}, {"client_email", "a@b"},
                          {"private_key", pem}};
    std::ofstream(path) << key.dump();
  }
  const std::vector<std::pair<std::string, std::string>> cases = {
      {dir + "/gcs_missing.json", "cannot be read"},
      {user, "HMAC"},
      {garbled, "not a JSON key file"},
      {bad_pem, "not an unencrypted PEM private key"},
      {encrypted, "not an unencrypted PEM private key"},
      {ec, "not an RSA key"}};
  for (const auto& [path, expected] : cases) {
    SCOPED_TRACE(path);
    setenv("GOOGLE_APPLICATION_CREDENTIALS", path.c_str(), 1);
    try {
      gcs_options_from_env();
      ADD_FAILURE() << "no error";
    } catch (const ShardingError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(path), std::string::npos) << m;
      EXPECT_NE(m.find(expected), std::string::npos) << m;
      EXPECT_EQ(m.find("never-shown"), std::string::npos) << m;
    }
  }
  // With an HMAC key the key file is not read.
  setenv("GOOGLE_ACCESS_KEY_ID", "GOOGENV", 1);
  setenv("GOOGLE_SECRET_ACCESS_KEY", "envsecret", 1);
  const S3Options o = gcs_options_from_env();
  EXPECT_EQ(o.credentials.access_key_id, "GOOGENV");
  EXPECT_FALSE(o.bearer_token);
}

TEST_F(GcsConfig, EndpointOverrideMustBeHttp) {
  setenv("GCS_ENDPOINT_URL", "http://127.0.0.1:4443/", 1);
  EXPECT_EQ(gcs_options_from_env().endpoint, "http://127.0.0.1:4443");
  setenv("GCS_ENDPOINT_URL", "s3://bucket", 1);
  try {
    gcs_options_from_env();
    FAIL() << "no error";
  } catch (const ShardingError& e) {
    EXPECT_NE(std::string(e.what()).find("GCS_ENDPOINT_URL"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace xpscale
