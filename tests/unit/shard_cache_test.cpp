// The node-local shard cache: one download per shard across processes,
// LRU eviction that never takes a shard in use.
#include "xpscale/sharding/shard_cache.h"

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "sharding_test_util.h"
#include "xpscale/sharding/error.h"

namespace xpscale {
namespace {

// A real file Source whose reads are slowed down, so that a second process
// asks for the shard while the first is still downloading it.
class SlowSource final : public Source {
 public:
  explicit SlowSource(std::shared_ptr<Source> inner) : inner_(std::move(inner)) {}
  ObjectInfo stat(const Url& url) override { return inner_->stat(url); }
  std::vector<ObjectInfo> list(const Url& prefix) override { return inner_->list(prefix); }
  void put(const Url& url, std::string_view bytes) override { inner_->put(url, bytes); }
  void read(const ObjectInfo& object, std::uint64_t offset, std::uint64_t length,
            const ByteSink& sink) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    inner_->read(object, offset, length, sink);
  }

 private:
  std::shared_ptr<Source> inner_;
};

std::string write_file(const test::TempDir& dir, const std::string& name, std::size_t size) {
  const std::string path = (dir.path() / name).string();
  open_source(parse_url(path))->put(parse_url(path), std::string(size, 'q'));
  return path;
}

TEST(ShardCache, TwoProcessesAskingAtOnceDownloadOnce) {
  test::TempDir dir;
  const std::string path = write_file(dir, "s.tar", 100000);
  const std::filesystem::path cache_dir = dir.path() / "cache";
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::vector<pid_t> children;
  for (int i = 0; i < 2; ++i) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      char result = 'e';
      try {
        SlowSource source(open_source(parse_url(path)));
        ShardCache cache(cache_dir, 0);
        bool downloaded = false;
        auto lease = cache.acquire(source, source.stat(parse_url(path)), "", &downloaded);
        std::string got;
        lease->read(0, 100000, [&](const char* d, std::size_t n) {
          got.append(d, n);
          return true;
        });
        if (got == std::string(100000, 'q')) result = downloaded ? 'd' : 'c';
      } catch (...) {
      }
      (void)!write(fds[1], &result, 1);
      _exit(0);
    }
    children.push_back(pid);
  }
  close(fds[1]);
  std::string results;
  char c;
  while (read(fds[0], &c, 1) == 1) results += c;
  close(fds[0]);
  for (pid_t pid : children) waitpid(pid, nullptr, 0);
  std::sort(results.begin(), results.end());
  EXPECT_EQ(results, "cd");  // one downloaded, one read the cached copy
}

TEST(ShardCache, EvictsLeastRecentlyUsedButNeverAShardInUse) {
  test::TempDir dir;
  auto source = open_source(parse_url(dir.str()));
  ShardCache cache(dir.path() / "cache", 250000);  // room for two of three
  auto info = [&](const std::string& name) {
    return source->stat(parse_url(write_file(dir, name, 100000)));
  };
  const ObjectInfo a = info("a.tar"), b = info("b.tar"), c = info("c.tar");
  auto held = cache.acquire(*source, a);                       // a stays in use throughout
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // distinct mtimes
  cache.acquire(*source, b);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  bool downloaded = false;
  cache.acquire(*source, c, "", &downloaded);
  EXPECT_TRUE(downloaded);
  // Over the bound: a is the oldest but in use, so b went.
  cache.acquire(*source, a, "", &downloaded);
  EXPECT_FALSE(downloaded);
  cache.acquire(*source, b, "", &downloaded);
  EXPECT_TRUE(downloaded);
}

TEST(ShardCache, AWrongChecksumCachesNothing) {
  test::TempDir dir;
  auto source = open_source(parse_url(dir.str()));
  ShardCache cache(dir.path() / "cache", 0);
  const ObjectInfo a = source->stat(parse_url(write_file(dir, "a.tar", 1000)));
  try {
    cache.acquire(*source, a, std::string(64, '0'));
    FAIL() << "expected an error";
  } catch (const ShardingError& e) {
    EXPECT_NE(std::string(e.what()).find("a.tar: sha256 "), std::string::npos) << e.what();
  }
  for (const auto& e : std::filesystem::directory_iterator(dir.path() / "cache"))
    EXPECT_EQ(e.path().extension(), ".lock") << e.path();
}

}  // namespace
}  // namespace xpscale
