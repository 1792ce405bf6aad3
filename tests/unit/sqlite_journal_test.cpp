// The SQLite store on network filesystems (sqlite_store.h,
// filesystem_kind.h): which filesystems count as network, and the journal
// the store keeps there. No NFS or Lustre can be mounted where the tests
// run; the rollback journal is tested through XPSCALE_SQLITE_JOURNAL=delete,
// and on a real FUSE mount (bindfs) where one can be made.
#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

#include "xpscale/store/filesystem_kind.h"
#include "xpscale/store/sqlite_store.h"
#include "xpscale/store/store.h"
#include "xpscale/store/store_lock.h"

namespace xpscale {
namespace {

namespace fs = std::filesystem;

constexpr const char* kJournalEnv = "XPSCALE_SQLITE_JOURNAL";

// Sets (or with nullptr unsets) an environment variable for a scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_.c_str(), old_->c_str(), 1);
    else
      ::unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

fs::path fresh_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir =
      fs::temp_directory_path() / ("xpscale-journal-" + std::to_string(::getpid()) + "-" +
                                   info->test_suite_name() + "-" + info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Bytes 18 and 19 of the file: 2,2 in WAL mode, 1,1 with a rollback journal.
std::pair<int, int> format_versions(const fs::path& db) {
  unsigned char header[20] = {};
  const int fd = ::open(db.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {-1, -1};
  const ssize_t n = ::pread(fd, header, sizeof header, 0);
  ::close(fd);
  if (n != static_cast<ssize_t>(sizeof header)) return {-1, -1};
  return {header[18], header[19]};
}

// The journal mode another SQLite connection reads from the file.
std::string journal_mode_seen_by_sqlite(const fs::path& db) {
  sqlite3* conn = nullptr;
  std::string mode = "(cannot open)";
  if (sqlite3_open_v2(db.c_str(), &conn, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* q = nullptr;
    if (sqlite3_prepare_v2(conn, "PRAGMA journal_mode", -1, &q, nullptr) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
      mode = reinterpret_cast<const char*>(sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
  }
  sqlite3_close(conn);
  return mode;
}

TEST(StoreFilesystem, KindNamesEveryNetworkFilesystem) {
  const std::pair<std::uint64_t, const char*> known[] = {
      {0x6969, "NFS"},
      {0x0BD00BD0, "Lustre"},
      {0x47504653, "GPFS"},
      {0xFF534D42, "CIFS"},
      {0xFE534D42, "SMB"},
      {0x517B, "SMB"},
      {0x00C36400, "CephFS"},
      {0x19830326, "BeeGFS"},
      {0x01021997, "9p"},
      {0x65735546, "FUSE"},
      {0x5346414F, "AFS"},
      {0x6B414653, "AFS"},
      {0xAAD7AAEA, "Panasas"},
      {0x18031977, "WekaFS"},
      {0x01161970, "GFS2"},
      {0x7461636F, "OCFS2"},
      {0x20030528, "OrangeFS"},
      {0x73757245, "Coda"},
      {0x013111A8, "IBRIX"},
      {0x61636673, "ACFS"},
      {0x564C, "NCP"},
      {0x786F4256, "VirtualBox shared folder"},
      {0xBACBACBC, "VMware shared folder"},
  };
  for (const auto& [magic, name] : known) {
    const auto kind = filesystem_kind(magic);
    ASSERT_TRUE(kind.has_value()) << std::hex << magic;
    EXPECT_EQ(*kind, name) << std::hex << magic;
  }
}

TEST(StoreFilesystem, LocalFilesystemsAreNotNetwork) {
  // ext4, xfs, btrfs, tmpfs, overlay (containers), zfs, ramfs, f2fs
  for (const std::uint64_t magic :
       {0xEF53ull, 0x58465342ull, 0x9123683Eull, 0x01021994ull, 0x794C7630ull, 0x2FC12FC1ull,
        0x858458F6ull, 0xF2F52010ull, 0ull})
    EXPECT_FALSE(filesystem_kind(magic).has_value()) << std::hex << magic;
}

TEST(StoreFilesystem, ASignExtendedMagicIsTheSameFilesystem) {
  // A 32-bit f_type comes sign-extended into 64 bits.
  EXPECT_EQ(filesystem_kind(0xFFFFFFFFFF534D42ull), "CIFS");
  EXPECT_EQ(filesystem_kind(0xFFFFFFFFAAD7AAEAull), "Panasas");
}

TEST(StoreFilesystem, ALocalTempDirIsNotNetwork) {
  const fs::path dir = fresh_dir();
  EXPECT_EQ(network_filesystem(dir), std::nullopt);
  // A path that does not exist yet is looked up at its nearest parent.
  EXPECT_EQ(network_filesystem(dir / "not" / "yet" / "xpscale.db"), std::nullopt);
  fs::remove_all(dir);
}

TEST(StoreFilesystem, AHolderIsOnThisHostOnlyWhenItsTextSaysSo) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  EXPECT_TRUE(held_on_this_host("host " + std::string(host) + ", pid 1, since now"));
  EXPECT_FALSE(held_on_this_host("host " + std::string(host) + "x, pid 1"));
  EXPECT_FALSE(held_on_this_host("host not-" + std::string(host) + ", pid 1"));
  EXPECT_FALSE(held_on_this_host("holder unknown"));
}

class SqliteStoreJournal : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fresh_dir(); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path db() const { return store_path(dir_); }
  ScopedEnv unset_{kJournalEnv, nullptr};  // the tests' own environment does not leak in
  fs::path dir_;
};

TEST_F(SqliteStoreJournal, ALocalStoreIsInWalMode) {
  SqliteStore s(db());
  EXPECT_EQ(s.journal_mode(), "wal");
  EXPECT_EQ(s.filesystem(), std::nullopt);
  EXPECT_EQ(format_versions(db()), std::make_pair(2, 2));
  EXPECT_EQ(journal_mode_seen_by_sqlite(db()), "wal");
}

TEST_F(SqliteStoreJournal, DeleteOverrideKeepsARollbackJournal) {
  ScopedEnv env(kJournalEnv, "delete");
  SqliteStore writer(db());
  EXPECT_EQ(writer.journal_mode(), "delete");
  writer.put_queued_trial(1, {{"x", 1}});
  EXPECT_EQ(format_versions(db()), std::make_pair(1, 1));
  EXPECT_EQ(journal_mode_seen_by_sqlite(db()), "delete");
  EXPECT_FALSE(fs::exists(db().string() + "-wal"));
  EXPECT_FALSE(fs::exists(db().string() + "-shm"));
}

TEST_F(SqliteStoreJournal, AReaderSeesCommittedRowsWhileTheWriterHasTheFileOpen) {
  ScopedEnv env(kJournalEnv, "delete");
  SqliteStore writer(db());
  writer.put_queued_trial(1, {{"x", 1}});
  writer.begin();
  writer.put_queued_trial(2, {{"x", 2}});  // not committed yet
  {
    SqliteStore reader(db(), Store::Mode::kReadOnly);
    EXPECT_TRUE(reader.trial(1).has_value());
    EXPECT_FALSE(reader.trial(2).has_value());
  }
  writer.commit();
  SqliteStore reader(db(), Store::Mode::kReadOnly);
  EXPECT_EQ(reader.trials().size(), 2u);
  writer.put_queued_trial(3, {{"x", 3}});
  EXPECT_EQ(reader.trials().size(), 3u);  // the same open reader sees the next commit too
}

TEST_F(SqliteStoreJournal, AWalStoreSwitchesToARollbackJournal) {
  { SqliteStore(db()).put_queued_trial(1, {{"x", 1}}); }
  ASSERT_EQ(format_versions(db()), std::make_pair(2, 2));
  ScopedEnv env(kJournalEnv, "delete");
  SqliteStore s(db());
  EXPECT_EQ(s.journal_mode(), "delete");
  EXPECT_EQ(format_versions(db()), std::make_pair(1, 1));
  EXPECT_TRUE(s.trial(1).has_value());
}

TEST_F(SqliteStoreJournal, SwitchingAWalStoreOpenElsewhereIsAClearError) {
  { SqliteStore(db()).put_queued_trial(1, {{"x", 1}}); }
  SqliteStore reader(db(), Store::Mode::kReadOnly);
  ASSERT_TRUE(reader.trial(1).has_value());  // holds the WAL open
  ScopedEnv env(kJournalEnv, "delete");
  try {
    SqliteStore s(db());
    FAIL() << "switched a WAL store another connection has open";
  } catch (const StoreError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("XPSCALE_SQLITE_JOURNAL=delete"), std::string::npos) << what;
    EXPECT_NE(what.find("another process has it open"), std::string::npos) << what;
  }
}

TEST_F(SqliteStoreJournal, WalOverrideKeepsWal) {
  ScopedEnv env(kJournalEnv, "wal");
  SqliteStore s(db());
  EXPECT_EQ(s.journal_mode(), "wal");
  EXPECT_EQ(format_versions(db()), std::make_pair(2, 2));
}

TEST_F(SqliteStoreJournal, AnUnknownOverrideIsAUserError) {
  ScopedEnv env(kJournalEnv, "truncate");
  EXPECT_THROW(SqliteStore s(db()), UserError);
  EXPECT_THROW(SqliteStore s(db(), Store::Mode::kReadOnly), UserError);
}

// A real FUSE filesystem: bindfs mirrors a local directory, and statfs says
// FUSE (as for sshfs, GlusterFS, ceph-fuse). Skipped where bindfs is not
// installed or FUSE cannot be mounted.
class FuseMount {
 public:
  FuseMount(const fs::path& source, const fs::path& point) : point_(point) {
    fs::create_directories(point);
    if (std::system("command -v bindfs >/dev/null 2>&1") != 0) {
      why_ = "bindfs is not installed (Debian's bindfs)";
      return;
    }
    const std::string mount = "bindfs '" + source.string() + "' '" + point.string() + "' 2>&1";
    mounted_ = std::system(mount.c_str()) == 0;
    if (!mounted_) why_ = "bindfs cannot mount here (no /dev/fuse, or no privilege)";
  }
  ~FuseMount() {
    if (!mounted_) return;
    const std::string unmount =
        "fusermount3 -u '" + point_.string() + "' 2>/dev/null || umount '" + point_.string() + "'";
    [[maybe_unused]] const int rc = std::system(unmount.c_str());
  }
  FuseMount(const FuseMount&) = delete;
  FuseMount& operator=(const FuseMount&) = delete;
  bool mounted() const { return mounted_; }
  const std::string& why() const { return why_; }

 private:
  fs::path point_;
  bool mounted_ = false;
  std::string why_;
};

TEST_F(SqliteStoreJournal, OnAFuseMountTheStoreKeepsARollbackJournal) {
  fs::create_directories(dir_ / "source");
  FuseMount mount(dir_ / "source", dir_ / "fuse");
  if (!mount.mounted()) GTEST_SKIP() << mount.why();
  const fs::path out_dir = dir_ / "fuse" / "runs" / "x";
  EXPECT_EQ(network_filesystem(dir_ / "fuse"), "FUSE");
  EXPECT_EQ(network_filesystem(out_dir), "FUSE");  // not created yet
  fs::create_directories(out_dir);
  const fs::path db = store_path(out_dir);
  SqliteStore writer(db);
  EXPECT_EQ(writer.journal_mode(), "delete");
  EXPECT_EQ(writer.filesystem(), "FUSE");
  writer.put_queued_trial(1, {{"x", 1}});
  EXPECT_EQ(format_versions(db), std::make_pair(1, 1));
  SqliteStore reader(db, Store::Mode::kReadOnly);
  EXPECT_TRUE(reader.trial(1).has_value());
  writer.put_queued_trial(2, {{"x", 2}});
  EXPECT_EQ(reader.trials().size(), 2u);
}

TEST_F(SqliteStoreJournal, OnAFuseMountWalOverrideKeepsWal) {
  fs::create_directories(dir_ / "source");
  FuseMount mount(dir_ / "source", dir_ / "fuse");
  if (!mount.mounted()) GTEST_SKIP() << mount.why();
  ScopedEnv env(kJournalEnv, "wal");
  SqliteStore s(store_path(dir_ / "fuse"));
  EXPECT_EQ(s.journal_mode(), "wal");
  EXPECT_EQ(s.filesystem(), "FUSE");
}

// The host that exports out_dir sees a local disk and writes WAL; another
// host sees the network filesystem and must not read it while that run
// goes on.
TEST_F(SqliteStoreJournal, AWalStoreWrittenOnAnotherHostIsNotReadThroughTheNetwork) {
  fs::create_directories(dir_ / "source");
  FuseMount mount(dir_ / "source", dir_ / "fuse");
  if (!mount.mounted()) GTEST_SKIP() << mount.why();
  const fs::path local = store_path(dir_ / "source");
  const fs::path remote = store_path(dir_ / "fuse");
  {
    SqliteStore writer(local);
    ASSERT_EQ(writer.journal_mode(), "wal");
    writer.put_queued_trial(1, {{"x", 1}});
  }
  {
    // A run holds the lock; its text says it runs on another host.
    StoreLock lock(remote);
    const int fd = ::open(lock_path(remote).c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    const std::string text = "host another-node, pid 7\n";
    ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    ::close(fd);
    try {
      SqliteStore reader(remote, Store::Mode::kReadOnly);
      FAIL() << "read a WAL store through FUSE while a run on another host writes it";
    } catch (const StoreError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("WAL mode on FUSE"), std::string::npos) << what;
      EXPECT_NE(what.find("another-node"), std::string::npos) << what;
    }
    ScopedEnv env(kJournalEnv, "wal");  // the user says it is safe
    EXPECT_TRUE(SqliteStore(remote, Store::Mode::kReadOnly).trial(1).has_value());
  }
  // No run holds it: nothing writes it, so it is read.
  EXPECT_TRUE(SqliteStore(remote, Store::Mode::kReadOnly).trial(1).has_value());
}

}  // namespace
}  // namespace xpscale
