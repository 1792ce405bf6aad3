// `xpscale shard`: the real command on Fashion-MNIST, CSV and directory
// inputs, read back with the loader; uploads and user errors.
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "sharding_test_util.h"
#include "xpscale/sharding/loader.h"

namespace xpscale {
namespace {

struct Result {
  int status = -1;
  std::string output;
};

Result xpscale_cmd(const std::string& args) {
  Result r;
  FILE* p = popen((std::string(XPSCALE_BIN) + " " + args + " 2>&1").c_str(), "r");
  char buffer[4096];
  std::size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, p)) > 0) r.output.append(buffer, n);
  const int status = pclose(p);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::vector<Sample> read_all(const std::string& manifest) {
  LoaderOptions o;
  o.shuffle_shards = false;
  ShardedLoader loader(open_dataset({.manifest = manifest}), o);
  std::vector<Sample> out;
  while (auto s = loader.next()) out.push_back(std::move(*s));
  return out;
}

std::string slurp(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(ShardCli, FashionMnistTestSplitBecomesShardsTheLoaderReads) {
  const std::string fmnist = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(fmnist)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  test::TempDir dir;
  const Result r =
      xpscale_cmd("shard " + fmnist + " --split test --out " + dir.str() + " --shards 3");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("wrote 3 shards (10000 samples"), std::string::npos) << r.output;
  const auto samples = read_all(dir.str() + "/test.manifest.json");
  ASSERT_EQ(samples.size(), 10000u);
  EXPECT_EQ(samples[0].key, "000000");
  EXPECT_EQ(samples[0].field("u8").size(), 784u);
  EXPECT_EQ(samples[0].field("cls"), "9");  // the first t10k label: ankle boot
  // The same input gives the same bytes.
  test::TempDir again;
  ASSERT_EQ(
      xpscale_cmd("shard " + fmnist + " --split test --out " + again.str() + " --shards 3").status,
      0);
  EXPECT_EQ(slurp(dir.path() / "test-000001.tar"), slurp(again.path() / "test-000001.tar"));
}

TEST(ShardCli, CsvRowsBecomeSamplesWithAFieldPerColumn) {
  test::TempDir dir;
  std::ofstream(dir.path() / "t.csv")
      << "x,label.name\n1,\"a, \"\"quoted\"\"\nline\"\r\n2,b\n3,c\n";
  const Result r =
      xpscale_cmd("shard " + dir.str() + "/t.csv --out " + dir.str() + "/out --shards 2");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto samples = read_all(dir.str() + "/out/t.manifest.json");
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[0].field("x"), "1");
  EXPECT_EQ(samples[0].field("label_name"), "a, \"quoted\"\nline");
  EXPECT_EQ(samples[2].field("label_name"), "c");
}

TEST(ShardCli, RangeKeepsPartOfTheInput) {
  test::TempDir dir;
  std::ofstream(dir.path() / "t.csv") << "x\n0\n1\n2\n3\n";
  const Result r =
      xpscale_cmd("shard " + dir.str() + "/t.csv --range 1:3 --out " + dir.str() + " --shards 1");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto samples = read_all(dir.str() + "/t.manifest.json");
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(samples[0].field("x"), "1");
  EXPECT_EQ(samples[1].field("x"), "2");
  const Result bad = xpscale_cmd("shard " + dir.str() + "/t.csv --range 3:9 --out " + dir.str());
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.output.find("--range 3:9: the input has samples 0:4"), std::string::npos)
      << bad.output;
}

TEST(ShardCli, FilesWithOneKeyAreOneSample) {
  test::TempDir dir;
  std::filesystem::create_directories(dir.path() / "in/sub");
  std::ofstream(dir.path() / "in/sub/a.jpg") << "JPEG";
  std::ofstream(dir.path() / "in/sub/a.cls") << "1";
  std::ofstream(dir.path() / "in/b.txt") << "bee";
  const Result r =
      xpscale_cmd("shard " + dir.str() + "/in --out " + dir.str() + "/out --shards 1 --name pics");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto samples = read_all(dir.str() + "/out/pics.manifest.json");
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(samples[0].key, "b");
  EXPECT_EQ(samples[1].key, "sub/a");
  EXPECT_EQ(samples[1].field("jpg"), "JPEG");
  EXPECT_EQ(samples[1].field("cls"), "1");
}

TEST(ShardCli, UploadPutsEveryObjectUnderTheOtherPrefix) {
  test::TempDir dir;
  std::ofstream(dir.path() / "t.csv") << "x\n1\n2\n3\n4\n";
  const Result r = xpscale_cmd("shard " + dir.str() + "/t.csv --out " + dir.str() +
                               "/a --upload file://" + dir.str() + "/b --shards 2");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* f : {"t-000000.tar", "t-000001.tar.idx", "t.manifest.json"})
    EXPECT_EQ(slurp(dir.path() / "a" / f), slurp(dir.path() / "b" / f)) << f;
  EXPECT_EQ(read_all("file://" + dir.str() + "/b/t.manifest.json").size(), 4u);
}

TEST(ShardCli, UserMistakesExitWithStatus2AndSayWhat) {
  test::TempDir dir;
  std::ofstream(dir.path() / "bad.csv") << "x,y\n1,2\n3\n";
  Result r = xpscale_cmd("shard " + dir.str() + "/bad.csv --out " + dir.str() + "/o");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("bad.csv: row 3 has 1 cells, the header has 2"), std::string::npos)
      << r.output;
  r = xpscale_cmd("shard " + dir.str() + "/none --out " + dir.str() + "/o");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("none: no such file or directory"), std::string::npos) << r.output;
  std::ofstream(dir.path() / "ok.csv") << "x\n1\n";
  r = xpscale_cmd("shard " + dir.str() + "/ok.csv --out " + dir.str() + "/o --shards 5");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("cannot split 1 samples into 5 shards"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "o"));
}

}  // namespace
}  // namespace xpscale
