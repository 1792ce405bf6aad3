// The sweep config's limits: what load_sweep_config reads (a regular file of
// at most kMaxSweepConfigBytes, never blocking), how long loading takes
// (linear in values and parameters) and the bounds of counts.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>

#include <gtest/gtest.h>

#include "test_util.h"
#include "xpscale/config/sweep_config.h"

namespace xpscale {
namespace {

namespace fs = std::filesystem;

class ConfigFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("xpscale-config-limits-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The message load_sweep_config(path) fails with; fails the test if it loads.
  static std::string load_error(const std::string& path) {
    try {
      (void)load_sweep_config(path);
    } catch (const ConfigError& e) {
      return e.what();
    }
    ADD_FAILURE() << path << " loaded";
    return "";
  }

  fs::path dir_;
};

constexpr const char* kSmallConfig = "method: random\ntrials: 1\nparameters:\n  a: {value: 1}\n";

TEST_F(ConfigFileTest, AConfigAtTheCapLoads) {
  // Padding with a comment keeps it a valid config of exactly the cap.
  const std::string path = (dir_ / "sweep.yaml").string();
  std::string text = kSmallConfig;
  text += "#" + std::string(kMaxSweepConfigBytes - text.size() - 2, 'x') + "\n";
  ASSERT_EQ(text.size(), kMaxSweepConfigBytes);
  std::ofstream(path, std::ios::binary) << text;
  EXPECT_EQ(load_sweep_config(path).parameters.size(), 1u);
}

TEST_F(ConfigFileTest, AFileLargerThanTheCapIsRefusedByName) {
  const std::string path = (dir_ / "big.yaml").string();
  std::ofstream(path, std::ios::binary) << kSmallConfig << std::string(kMaxSweepConfigBytes, '#');
  const std::string error = load_error(path);
  EXPECT_NE(error.find(path + ": the sweep config is"), std::string::npos) << error;
  EXPECT_NE(error.find("larger than 16 MiB (16777216 bytes)"), std::string::npos) << error;
}

TEST_F(ConfigFileTest, AnEndlessDeviceIsRefusedWithoutReadingIt) {
  const std::string error = load_error("/dev/zero");
  EXPECT_NE(error.find("/dev/zero: is a character device; a sweep config must be a regular file"),
            std::string::npos)
      << error;
}

TEST_F(ConfigFileTest, ADirectoryIsRefused) {
  const std::string error = load_error(dir_.string());
  EXPECT_NE(error.find(dir_.string() + ": is a directory"), std::string::npos) << error;
}

TEST_F(ConfigFileTest, AFifoIsRefusedWithoutBlocking) {
  const std::string path = (dir_ / "fifo.yaml").string();
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  auto result = std::async(std::launch::async, [&] { return load_error(path); });
  if (result.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    // Unblock the reader so the test ends, then fail.
    const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) ::close(fd);
    result.wait();
    FAIL() << "load_sweep_config blocked on a FIFO";
  }
  const std::string error = result.get();
  EXPECT_NE(error.find(path + ": is a pipe or FIFO; a sweep config must be a regular file"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("process substitution"), std::string::npos) << error;
}

TEST_F(ConfigFileTest, AMissingFileNamesTheReason) {
  const std::string error = load_error((dir_ / "none.yaml").string());
  EXPECT_NE(error.find("none.yaml: cannot read the sweep config: No such file or directory"),
            std::string::npos)
      << error;
}

}  // namespace
}  // namespace xpscale
