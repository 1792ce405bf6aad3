// Store files of job arrays and preempted attempts (store.h).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "xpscale/store/sqlite_store.h"

namespace xpscale {
namespace {

namespace fs = std::filesystem;

class ArrayStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("xpscale-array-store-" +
            std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void touch(const std::string& name) { std::ofstream(dir_ / name) << ""; }
  fs::path dir_;
};

TEST_F(ArrayStoreTest, TaskStoresAreNamedByTask) {
  EXPECT_EQ(store_path(dir_), dir_ / "xpscale.db");
  EXPECT_EQ(store_path(dir_, 0, 0), dir_ / "xpscale.db");
  EXPECT_EQ(store_path(dir_, 3, 8), dir_ / "xpscale.task3.db");
}

TEST_F(ArrayStoreTest, StorePathsListsTasksInNumericOrder) {
  EXPECT_TRUE(store_paths(dir_).empty());
  for (const char* n : {"xpscale.task10.db", "xpscale.task2.db", "xpscale.task0.db",
                        "xpscale.taskx.db", "xpscale.task1.db-wal", "other.db"})
    touch(n);
  EXPECT_EQ(store_paths(dir_),
            (std::vector<fs::path>{dir_ / "xpscale.task0.db", dir_ / "xpscale.task2.db",
                                   dir_ / "xpscale.task10.db"}));
  touch("xpscale.db");
  EXPECT_EQ(store_paths(dir_).front(), dir_ / "xpscale.db");
  EXPECT_TRUE(store_paths(dir_ / "missing").empty());
}

TEST_F(ArrayStoreTest, InterruptedAttemptQueuesItsTrialAgain) {
  SqliteStore s(store_path(dir_));
  s.put_queued_trial(4, {{"x", 1}});
  s.start_attempt(4, 1, 1, 0, "0", "h", 10.0);
  s.interrupt_attempt(4, 1, "preempted", 12.0);
  const auto t = s.trial(4);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->status, TrialStatus::kQueued);
  EXPECT_EQ(t->attempts, 1);
  EXPECT_EQ(t->reason, "preempted");
  const auto a = s.attempts(4);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, "interrupted");
  EXPECT_EQ(a[0].finished_at, 12.0);
}

}  // namespace
}  // namespace xpscale
