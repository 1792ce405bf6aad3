// Checkpoints and the data-parallel trainer: k ranks with slices of each
// batch train exactly what one rank with the whole batch trains; a resumed
// run continues where it stopped; bad checkpoints are named.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <vector>

#include "fmnist/checkpoint.h"
#include "fmnist/data_parallel.h"
#include "fmnist/dataset.h"
#include "fmnist_thread_comm.h"
#include "xpscale/search/rng.h"

namespace {

namespace fs = std::filesystem;
using fmnist::Checkpoint;
using fmnist::CheckpointError;
using fmnist::DataParallelTrainer;
using fmnist::TrainOptions;
using fmnist_test::run_group;
using testing::HasSubstr;

// Images of class c are a bright horizontal band at rows 2c..2c+4 plus
// noise: learnable in an epoch or two.
fmnist::Split synthetic_split(std::size_t n, std::uint64_t seed) {
  fmnist::Split s;
  s.pixels.resize(n * fmnist::kPixels);
  s.labels.resize(n);
  xpscale::Rng rng(seed, 0);
  for (std::size_t j = 0; j < n; ++j) {
    const auto c = static_cast<int>(rng.next_below(fmnist::kClasses));
    s.labels[j] = static_cast<std::uint8_t>(c);
    for (int p = 0; p < fmnist::kPixels; ++p) {
      const int row = p / fmnist::kImageSide;
      const bool band = row >= 2 * c && row < 2 * c + 5;
      s.pixels[j * fmnist::kPixels + p] =
          static_cast<std::uint8_t>((band ? 150 : 0) + rng.next_below(100));
    }
  }
  return s;
}

std::vector<float> params_of(const DataParallelTrainer& t) {
  return {t.model().params().begin(), t.model().params().end()};
}

class TempDir : public testing::Test {
 protected:
  void SetUp() override {
    // The pid keeps concurrent runs (ctest -j, other build trees) apart.
    dir_ =
        fs::temp_directory_path() / ("fmnist_trainer_test_" + std::to_string(::getpid()) + "_" +
                                     testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST(EpochPermutation, IsAPermutationFixedBySeedAndEpoch) {
  const auto a = fmnist::epoch_permutation(1000, 3, 1);
  EXPECT_EQ(std::set<std::uint32_t>(a.begin(), a.end()).size(), 1000u);
  EXPECT_EQ(*std::max_element(a.begin(), a.end()), 999u);
  EXPECT_EQ(a, fmnist::epoch_permutation(1000, 3, 1));
  EXPECT_NE(a, fmnist::epoch_permutation(1000, 3, 2));
  EXPECT_NE(a, fmnist::epoch_permutation(1000, 4, 1));
}

TEST(DataParallelTrainer, SingleRankTrainingLearns) {
  const auto train = synthetic_split(2000, 1);
  const auto val = synthetic_split(500, 2);
  run_group(1, [&](auto& comm) {
    DataParallelTrainer t(train, TrainOptions{.hidden = 32, .batch_size = 50, .lr = 0.02}, comm);
    const auto before = t.evaluate(val);
    const double loss1 = t.train_epoch(1);
    const double loss2 = t.train_epoch(2);
    const auto after = t.evaluate(val);
    EXPECT_GT(before.loss, 1.5);
    EXPECT_LT(loss2, loss1);
    EXPECT_LT(after.loss, 0.2 * before.loss);
    EXPECT_GT(after.accuracy, 0.95);
    EXPECT_EQ(t.steps_per_epoch(), 40u);
  });
}

class GroupSizes : public testing::TestWithParam<int> {};

// The contract of data parallelism: k ranks, each with batch/k samples and
// averaged gradients, train the weights one rank trains with the batch.
TEST_P(GroupSizes, MatchSingleRankTraining) {
  const int ranks = GetParam();
  const auto train = synthetic_split(960, 5);
  const TrainOptions options{
      .hidden = 24, .batch_size = 48, .lr = 0.05, .momentum = 0.9, .seed = 9};
  std::vector<float> reference;
  run_group(1, [&](auto& comm) {
    DataParallelTrainer t(train, options, comm);
    t.train_epoch(1);
    t.train_epoch(2);
    reference = params_of(t);
  });
  std::vector<std::vector<float>> got(ranks);
  std::vector<double> losses(ranks);
  run_group(ranks, [&](auto& comm) {
    DataParallelTrainer t(train, options, comm);
    EXPECT_EQ(t.local_batch(), 48 / ranks);
    t.train_epoch(1);
    losses[comm.rank()] = t.train_epoch(2);
    got[comm.rank()] = params_of(t);
  });
  for (int r = 0; r < ranks; ++r) {
    EXPECT_EQ(got[r], got[0]) << "rank " << r << " differs from rank 0";
    EXPECT_EQ(losses[r], losses[0]);
  }
  double worst = 0;
  for (std::size_t i = 0; i < reference.size(); ++i)
    worst = std::max(worst, double{std::abs(got[0][i] - reference[i])});
  EXPECT_LT(worst, 1e-4) << "largest difference to single-rank training";
}

INSTANTIATE_TEST_SUITE_P(Ranks, GroupSizes, testing::Values(2, 3, 4));

TEST(DataParallelTrainer, EvaluationSumsTheShardsOfAllRanks) {
  const auto train = synthetic_split(300, 1);
  const auto val = synthetic_split(101, 2);  // not divisible by 3
  fmnist::Evaluation one, three;
  run_group(1, [&](auto& comm) {
    one = DataParallelTrainer(train, {.hidden = 8, .batch_size = 48}, comm).evaluate(val);
  });
  run_group(3, [&](auto& comm) {
    const auto e = DataParallelTrainer(train, {.hidden = 8, .batch_size = 48}, comm).evaluate(val);
    if (comm.rank() == 0) three = e;
  });
  EXPECT_NEAR(three.loss, one.loss, 1e-5);
  EXPECT_DOUBLE_EQ(three.accuracy, one.accuracy);
}

TEST(DataParallelTrainer, BatchNotAMultipleOfTheGroupIsAUserError) {
  const auto train = synthetic_split(100, 1);
  try {
    run_group(2, [&](auto& comm) { DataParallelTrainer(train, {.batch_size = 33}, comm); });
    FAIL() << "no error";
  } catch (const xpscale::UserError& e) {
    EXPECT_THAT(e.what(),
                HasSubstr("batch_size 33 must be a positive multiple of the group size 2"));
  }
}

TEST_F(TempDir, CheckpointRoundTrips) {
  Checkpoint c;
  c.epoch = 3;
  c.shape = {4, 3, 2};
  c.params.resize(c.shape.param_count());
  std::iota(c.params.begin(), c.params.end(), 0.5f);
  c.velocity.assign(c.params.size(), -1.25f);
  const auto file = fmnist::checkpoint_file(dir_, 3);
  EXPECT_EQ(file.filename(), "mlp-epoch-000003.bin");
  fmnist::save_checkpoint(file, c);
  const Checkpoint d = fmnist::load_checkpoint(file);
  EXPECT_EQ(d.epoch, 3);
  EXPECT_EQ(d.shape, c.shape);
  EXPECT_EQ(d.params, c.params);
  EXPECT_EQ(d.velocity, c.velocity);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1)
      << "the temporary file is left behind";
}

class BrokenCheckpoint : public TempDir {
 protected:
  void SetUp() override {
    TempDir::SetUp();
    Checkpoint c;
    c.shape = {4, 3, 2};
    c.params.assign(c.shape.param_count(), 1.0f);
    c.velocity = c.params;
    file_ = dir_ / "c.bin";
    fmnist::save_checkpoint(file_, c);
    std::ifstream in(file_, std::ios::binary);
    bytes_.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::string load_error() {
    std::ofstream(file_, std::ios::binary | std::ios::trunc)
        .write(bytes_.data(), static_cast<std::streamsize>(bytes_.size()));
    try {
      fmnist::load_checkpoint(file_);
    } catch (const CheckpointError& e) {
      EXPECT_THAT(e.what(), HasSubstr(file_.string()));
      return e.what();
    }
    ADD_FAILURE() << "no CheckpointError";
    return {};
  }
  fs::path file_;
  std::vector<char> bytes_;
};

TEST_F(BrokenCheckpoint, TruncatedFileIsShort) {
  bytes_.resize(bytes_.size() - 9);
  EXPECT_THAT(load_error(), HasSubstr("short file"));
}

TEST_F(BrokenCheckpoint, FlippedByteFailsTheChecksum) {
  bytes_[40] ^= 0x10;
  EXPECT_THAT(load_error(), HasSubstr("checksum mismatch"));
}

TEST_F(BrokenCheckpoint, OtherFileHasBadMagic) {
  bytes_[0] = 'Y';
  EXPECT_THAT(load_error(), HasSubstr("bad magic"));
}

TEST_F(TempDir, MissingCheckpointIsNamed) {
  EXPECT_THROW(fmnist::load_checkpoint(dir_ / "none.bin"), CheckpointError);
}

TEST_F(TempDir, RemovesOnlyOlderEpochs) {
  Checkpoint c;
  c.shape = {2, 2, 2};
  c.params.assign(c.shape.param_count(), 0.0f);
  c.velocity = c.params;
  for (int e = 1; e <= 3; ++e) fmnist::save_checkpoint(fmnist::checkpoint_file(dir_, e), c);
  std::ofstream(dir_ / "notes.txt") << "keep";
  fmnist::remove_checkpoints_before(dir_, 3);
  EXPECT_FALSE(fs::exists(fmnist::checkpoint_file(dir_, 2)));
  EXPECT_TRUE(fs::exists(fmnist::checkpoint_file(dir_, 3)));
  EXPECT_TRUE(fs::exists(dir_ / "notes.txt"));
}

// Stop after epoch 1, save, restore into a fresh trainer, train epoch 2:
// the same weights as two epochs without a break.
TEST_F(TempDir, ResumedTrainingContinuesExactly) {
  const auto train = synthetic_split(500, 4);
  const TrainOptions options{
      .hidden = 16, .batch_size = 20, .lr = 0.05, .momentum = 0.9, .seed = 2};
  run_group(1, [&](auto& comm) {
    DataParallelTrainer straight(train, options, comm);
    straight.train_epoch(1);
    straight.train_epoch(2);

    DataParallelTrainer first(train, options, comm);
    first.train_epoch(1);
    fmnist::save_checkpoint(fmnist::checkpoint_file(dir_, 1), first.snapshot(1));

    // Fresh weights from the same seed: only restore() can make it match.
    DataParallelTrainer resumed(train, options, comm);
    resumed.restore(fmnist::load_checkpoint(fmnist::checkpoint_file(dir_, 1)));
    resumed.train_epoch(2);
    EXPECT_EQ(params_of(resumed), params_of(straight));
  });
}

TEST(DataParallelTrainer, RestoreRejectsAnotherShape) {
  const auto train = synthetic_split(100, 1);
  run_group(1, [&](auto& comm) {
    DataParallelTrainer t(train, {.hidden = 8}, comm);
    DataParallelTrainer other(train, {.hidden = 9}, comm);
    try {
      t.restore(other.snapshot(4));
      FAIL() << "no error";
    } catch (const CheckpointError& e) {
      EXPECT_THAT(e.what(), HasSubstr("784-9-10 model, this trial trains 784-8-10"));
    }
  });
}

// On the real data when it is installed: one short epoch on a tenth of the
// training set already beats 75% validation accuracy.
TEST(FashionMnist, ShortTrainingOnTheRealDataLearns) {
  const fs::path dir = fmnist::default_data_dir();
  if (!fs::exists(dir / "train-images-idx3-ubyte.gz") &&
      !fs::exists(dir / "train-images-idx3-ubyte"))
    GTEST_SKIP() << "Fashion-MNIST not installed in " << dir;
  const fmnist::Dataset d = fmnist::load_dataset(dir);
  ASSERT_EQ(d.train.size(), 55000u);
  ASSERT_EQ(d.validation.size(), 5000u);
  ASSERT_EQ(d.test.size(), 10000u);
  fmnist::Split small;
  small.pixels.assign(d.train.pixels.begin(), d.train.pixels.begin() + 6000 * fmnist::kPixels);
  small.labels.assign(d.train.labels.begin(), d.train.labels.begin() + 6000);
  run_group(1, [&](auto& comm) {
    DataParallelTrainer t(small, {.hidden = 64, .batch_size = 32, .lr = 0.02}, comm);
    const auto before = t.evaluate(d.validation);
    t.train_epoch(1);
    const auto after = t.evaluate(d.validation);
    EXPECT_LT(after.loss, 0.5 * before.loss);
    EXPECT_GT(after.accuracy, 0.75);
  });
}

}  // namespace
