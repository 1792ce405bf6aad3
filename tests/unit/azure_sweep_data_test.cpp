// A sweep config's `data:` names Azure Blob and GCS datasets as it names S3
// ones (gs:// is checked at the end):
// az:// and https://ACCOUNT.blob.core.windows.net URLs in manifest, urls,
// pattern and prefix, and a malformed az:// URL is an error at its place.
#include <gtest/gtest.h>

#include <string>

#include "xpscale/config/sweep_config.h"
#include "xpscale/core/error.h"

namespace xpscale {
namespace {

std::string config_with(const std::string& train) {
  return "method: random\nmetric: {name: loss}\nparameters:\n  a: {min: 0.0, max: 1.0}\n"
         "data:\n  train: " +
         train + "\n";
}

TEST(AzureSweepData, AzPatternsExpandLikeS3Ones) {
  const auto c = parse_sweep_config(
      config_with("{pattern: \"az://datasets/fmnist/train-{000000..000003}.tar\"}"), "s.yaml");
  ASSERT_TRUE(c.train_data);
  ASSERT_EQ(c.train_data->urls.size(), 4u);
  EXPECT_EQ(c.train_data->urls.back(), "az://datasets/fmnist/train-000003.tar");
}

TEST(AzureSweepData, AzManifestsPrefixesAndBlobCoreUrlsAreAccepted) {
  for (const std::string train :
       {"{manifest: az://datasets/fmnist/t.manifest.json}", "{prefix: az://datasets/fmnist/}",
        "{urls: [\"https://acct.blob.core.windows.net/datasets/fmnist/train-000000.tar\"]}"}) {
    SCOPED_TRACE(train);
    const auto c = parse_sweep_config(config_with(train), "s.yaml");
    EXPECT_TRUE(c.train_data);
  }
}

TEST(AzureSweepData, AnAzUrlWithoutContainerIsAnErrorAtItsPlace) {
  try {
    parse_sweep_config(config_with("{manifest: \"az:///t.manifest.json\"}"), "s.yaml");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("s.yaml:6"), std::string::npos) << what;
    EXPECT_NE(what.find("empty container"), std::string::npos) << what;
  }
}

TEST(GcsSweepData, GsPatternsManifestsAndPrefixesAreAccepted) {
  const auto c = parse_sweep_config(
      config_with("{pattern: \"gs://my-bucket/fmnist/train-{000000..000003}.tar\"}"), "s.yaml");
  ASSERT_TRUE(c.train_data);
  ASSERT_EQ(c.train_data->urls.size(), 4u);
  EXPECT_EQ(c.train_data->urls.front(), "gs://my-bucket/fmnist/train-000000.tar");
  for (const std::string train :
       {"{manifest: gs://my-bucket/fmnist/t.manifest.json}", "{prefix: gs://my-bucket/fmnist/}"}) {
    SCOPED_TRACE(train);
    EXPECT_TRUE(parse_sweep_config(config_with(train), "s.yaml").train_data);
  }
  try {
    parse_sweep_config(config_with("{manifest: \"gs:///t.manifest.json\"}"), "s.yaml");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("s.yaml:6"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("empty bucket"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace xpscale
