// IDX reading and the Fashion-MNIST splits: good files load, bad ones fail
// with a message that names the file and what is wrong.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fmnist/dataset.h"
#include "fmnist/idx.h"

namespace {

namespace fs = std::filesystem;
using fmnist::IdxArray;
using fmnist::IdxError;
using testing::HasSubstr;

class IdxTest : public testing::Test {
 protected:
  void SetUp() override {
    // The pid keeps concurrent runs (ctest -j, other build trees) apart.
    dir_ =
        fs::temp_directory_path() / ("fmnist_idx_test_" + std::to_string(::getpid()) + "_" +
                                     testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::vector<std::uint8_t>& bytes) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    return p;
  }
  fs::path write_gz(const std::string& name, const std::vector<std::uint8_t>& bytes) {
    const fs::path p = dir_ / name;
    gzFile f = gzopen(p.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
    return p;
  }
  // The message of the IdxError that fn throws.
  template <class Fn>
  static std::string error_of(Fn&& fn) {
    try {
      fn();
    } catch (const IdxError& e) {
      return e.what();
    }
    ADD_FAILURE() << "no IdxError";
    return {};
  }

  fs::path dir_;
};

IdxArray images(std::uint32_t n, std::uint32_t side = 28) {
  IdxArray a{{n, side, side}, std::vector<std::uint8_t>(std::size_t{n} * side * side)};
  for (std::size_t i = 0; i < a.data.size(); ++i) a.data[i] = static_cast<std::uint8_t>(i * 7);
  return a;
}
IdxArray labels(std::uint32_t n, std::uint8_t max = 9) {
  IdxArray a{{n}, std::vector<std::uint8_t>(n)};
  for (std::uint32_t i = 0; i < n; ++i) a.data[i] = static_cast<std::uint8_t>(i % (max + 1));
  return a;
}

TEST_F(IdxTest, ReadsPlainAndGzipFilesAlike) {
  const IdxArray a = images(3);
  for (const fs::path& p :
       {write("plain", fmnist::encode_idx(a)), write_gz("packed.gz", fmnist::encode_idx(a))}) {
    const IdxArray b = fmnist::read_idx(p);
    EXPECT_EQ(b.dims, (std::vector<std::uint32_t>{3, 28, 28})) << p;
    EXPECT_EQ(b.data, a.data) << p;
    EXPECT_EQ(b.count(), 3u);
    EXPECT_EQ(b.item_size(), 784u);
  }
}

TEST_F(IdxTest, BadMagicNamesTheFile) {
  auto bytes = fmnist::encode_idx(labels(4));
  bytes[0] = 0x1f;
  const auto p = write("labels", bytes);
  const std::string msg = error_of([&] { fmnist::read_idx(p); });
  EXPECT_THAT(msg, HasSubstr(p.string()));
  EXPECT_THAT(msg, HasSubstr("bad magic"));
}

TEST_F(IdxTest, UnsupportedElementTypeIsNamed) {
  auto bytes = fmnist::encode_idx(labels(4));
  bytes[2] = 0x0d;  // float
  const std::string msg = error_of([&] { fmnist::parse_idx(bytes, "x.idx"); });
  EXPECT_THAT(msg, HasSubstr("x.idx: unsupported IDX element type 0x0d"));
}

TEST_F(IdxTest, ShortFileSaysHowManyBytesAreMissing) {
  auto bytes = fmnist::encode_idx(images(2));
  bytes.resize(bytes.size() - 10);
  const auto p = write("images", bytes);
  const std::string msg = error_of([&] { fmnist::read_idx(p); });
  EXPECT_THAT(msg, HasSubstr(p.string()));
  EXPECT_THAT(msg,
              HasSubstr("short file: dims 2x28x28 need 1568 bytes of data, the file has 1558"));
}

TEST_F(IdxTest, ShortHeaderIsReported) {
  const std::vector<std::uint8_t> bytes = {0, 0, 8, 3, 0, 0, 0, 2};
  EXPECT_THAT(error_of([&] { fmnist::parse_idx(bytes, "h"); }),
              HasSubstr("h: short file: 8 bytes, the header of 3 dimensions needs 16"));
  EXPECT_THAT(error_of([&] {
                fmnist::parse_idx(std::vector<std::uint8_t>{0, 0}, "e");
              }),
              HasSubstr("e: short file"));
}

TEST_F(IdxTest, TrailingBytesPointAtTheDims) {
  auto bytes = fmnist::encode_idx(labels(4));
  bytes.push_back(1);
  EXPECT_THAT(error_of([&] { fmnist::parse_idx(bytes, "l"); }),
              HasSubstr("l: dims 4 need 4 bytes of data, but the file has 1 bytes more"));
}

TEST_F(IdxTest, MissingFileNamesIt) {
  const fs::path p = dir_ / "nope";
  const std::string msg = error_of([&] { fmnist::read_idx(p); });
  EXPECT_THAT(msg, HasSubstr(p.string() + ": cannot open"));
}

TEST_F(IdxTest, TruncatedGzipIsNamed) {
  const auto full = write_gz("full.gz", fmnist::encode_idx(images(50)));
  std::ifstream in(full, std::ios::binary);
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
  bytes.resize(bytes.size() / 2);
  const auto p = write("cut.gz", bytes);
  const std::string msg = error_of([&] { fmnist::read_idx(p); });
  EXPECT_THAT(msg, HasSubstr(p.string()));
  EXPECT_THAT(msg, HasSubstr("truncated"));
}

TEST_F(IdxTest, SplitRejectsImagesOfAnotherSize) {
  const std::string msg =
      error_of([&] { fmnist::make_split(images(2, 27), "img", labels(2), "lab", 0, 2); });
  EXPECT_THAT(msg, HasSubstr("img: dims 2x27x27, expected N x 28 x 28 images"));
}

TEST_F(IdxTest, SplitRejectsCountMismatchNamingBothFiles) {
  const std::string msg =
      error_of([&] { fmnist::make_split(images(3), "img", labels(2), "lab", 0, 2); });
  EXPECT_THAT(msg, HasSubstr("img has 3 images but lab has 2 labels"));
}

TEST_F(IdxTest, SplitRejectsLabelsOutsideTheClasses) {
  const std::string msg =
      error_of([&] { fmnist::make_split(images(12), "img", labels(12, 11), "lab", 0, 12); });
  EXPECT_THAT(msg, HasSubstr("lab: label 10 at index 10 is not a class 0-9"));
}

TEST_F(IdxTest, LoadDatasetHoldsOutTheLastTrainingImages) {
  write_gz("train-images-idx3-ubyte.gz", fmnist::encode_idx(images(10)));
  write_gz("train-labels-idx1-ubyte.gz", fmnist::encode_idx(labels(10)));
  write("t10k-images-idx3-ubyte", fmnist::encode_idx(images(4)));  // plain works too
  write("t10k-labels-idx1-ubyte", fmnist::encode_idx(labels(4)));
  const fmnist::Dataset d = fmnist::load_dataset(dir_, 3);
  ASSERT_EQ(d.train.size(), 7u);
  ASSERT_EQ(d.validation.size(), 3u);
  ASSERT_EQ(d.test.size(), 4u);
  EXPECT_EQ(d.validation.labels[0], 7);
  EXPECT_EQ(d.validation.pixels[0], images(10).data[7 * 784]);
}

TEST_F(IdxTest, LoadDatasetNamesTheMissingFileAndThePackage) {
  const std::string msg = error_of([&] { fmnist::load_dataset(dir_); });
  EXPECT_THAT(msg, HasSubstr((dir_ / "train-images-idx3-ubyte").string() + ": no such file"));
  EXPECT_THAT(msg, HasSubstr("dataset-fashion-mnist"));
}

TEST(Split, GatherNormalisesPixelsAndKeepsLabels) {
  fmnist::Split s;
  s.pixels.assign(2 * 784, 0);
  s.pixels[784] = 255;
  s.labels = {3, 8};
  std::vector<float> x(2 * 784);
  std::uint8_t y[2];
  const std::uint32_t order[2] = {1, 0};
  s.gather(order, x.data(), y);
  EXPECT_EQ(y[0], 8);
  EXPECT_EQ(y[1], 3);
  EXPECT_NEAR(x[0], (1.0 - 0.2860) / 0.3530, 1e-5);  // pixel 255 of image 1
  EXPECT_NEAR(x[784], -0.2860 / 0.3530, 1e-5);       // pixel 0 of image 0
}

}  // namespace
