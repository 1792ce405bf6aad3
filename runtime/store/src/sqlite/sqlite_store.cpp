// The SQLite engine of the store (sqlite_store.h). This file is the one
// boundary to the SQLite C API: every call is checked by check() below,
// which names the store's file and SQLite's own message.
#include "xpscale/store/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string_view>
#include <utility>

#include "xpscale/store/filesystem_kind.h"
#include "xpscale/store/store_lock.h"

namespace xpscale {
namespace {

constexpr int kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sweep(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  name TEXT NOT NULL, config_path TEXT NOT NULL, config_text TEXT NOT NULL,
  config_hash TEXT NOT NULL, metric TEXT NOT NULL, goal TEXT NOT NULL,
  planned INTEGER NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs(
  run INTEGER PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL,
  world_size INTEGER NOT NULL, groups INTEGER NOT NULL, ranks_per_trial INTEGER NOT NULL,
  hosts TEXT NOT NULL, resumed INTEGER NOT NULL, status TEXT NOT NULL DEFAULT 'running',
  summary TEXT);
CREATE TABLE IF NOT EXISTS trials(
  id INTEGER PRIMARY KEY, params TEXT NOT NULL, status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, grp INTEGER, ranks TEXT NOT NULL DEFAULT '',
  hosts TEXT NOT NULL DEFAULT '', started_at REAL, finished_at REAL,
  reason TEXT NOT NULL DEFAULT '', stderr_tail TEXT NOT NULL DEFAULT '',
  last_step INTEGER, best_value REAL, best_step INTEGER, last_metrics TEXT);
CREATE TABLE IF NOT EXISTS attempts(
  trial INTEGER NOT NULL, attempt INTEGER NOT NULL, run INTEGER NOT NULL, grp INTEGER NOT NULL,
  ranks TEXT NOT NULL, hosts TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL,
  status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', stderr_tail TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (trial, attempt));
CREATE TABLE IF NOT EXISTS metrics(
  trial INTEGER NOT NULL, attempt INTEGER NOT NULL, step INTEGER NOT NULL, time REAL NOT NULL,
  value REAL, values_json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS metrics_by_trial ON metrics(trial, step);
CREATE TABLE IF NOT EXISTS algorithm_state(name TEXT PRIMARY KEY, state TEXT NOT NULL);
)sql";

// XPSCALE_SQLITE_JOURNAL: "wal", "delete", or "" when unset.
std::string journal_override() {
  const char* env = std::getenv("XPSCALE_SQLITE_JOURNAL");
  const std::string value = env ? env : "";
  if (value.empty() || value == "wal" || value == "delete") return value;
  throw UserError("XPSCALE_SQLITE_JOURNAL: expected wal or delete, got '" + value + "'");
}

// Bytes 18 and 19 of an SQLite file, its format's write and read versions,
// are 2 in WAL mode and 1 with a rollback journal
// (https://www.sqlite.org/fileformat2.html, "File format version numbers").
bool wal_header(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  unsigned char header[20] = {};
  const ssize_t n = ::pread(fd, header, sizeof header, 0);
  ::close(fd);
  return n == static_cast<ssize_t>(sizeof header) && (header[18] == 2 || header[19] == 2);
}

}  // namespace

// Owns the connection and checks every call.
class SqliteStore::Db {
 public:
  Db(const std::filesystem::path& path, Mode mode) : path_(path.string()) {
    const int flags =
        mode == Mode::kReadOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    // The store holds config text and trials' stderr: created 0600 (SQLite
    // gives its -wal and -shm files the same mode).
    if (mode != Mode::kReadOnly)
      if (const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
          fd >= 0)
        ::close(fd);
    const int rc = sqlite3_open_v2(path_.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close(db_);
      db_ = nullptr;
      throw StoreError("cannot open store " + path_ + ": " + msg);
    }
    sqlite3_extended_result_codes(db_, 1);
    // Short: the longer wait for another process's lock is the run's
    // --store-retry (retrying_store.h), with a message while it waits.
    check(sqlite3_busy_timeout(db_, 1000), "sqlite3_busy_timeout");
  }
  ~Db() {
    for (auto& [sql, cached] : cache_) sqlite3_finalize(cached.stmt);
    sqlite3_close_v2(db_);
  }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  void check(int rc, const char* what) const {
    if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) return;
    throw StoreError("store " + path_ + ": " + what + " failed: " + sqlite3_errmsg(db_) + " (" +
                         sqlite3_errstr(rc) + ")",
                     transient(rc));
  }

  // Busy or locked by another connection, disk full, an I/O error: the
  // same write may succeed later.
  static bool transient(int rc) {
    switch (rc & 0xff) {
      case SQLITE_BUSY:
      case SQLITE_LOCKED:
      case SQLITE_FULL:
      case SQLITE_IOERR:
      case SQLITE_CANTOPEN:
      case SQLITE_PROTOCOL:
        return true;
      default:
        return false;
    }
  }

  void exec(const char* sql) const {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::string msg = err ? err : sqlite3_errstr(rc);
      sqlite3_free(err);
      throw StoreError("store " + path_ + ": " + msg, transient(sqlite3_extended_errcode(db_)));
    }
  }

  struct Cached {
    sqlite3_stmt* stmt;
    bool in_use;
  };
  static constexpr std::size_t kMaxCached = 128;

  // A prepared statement, reset on destruction; bind with 1-based indexes.
  // Statements are prepared once per connection and kept (parsing and
  // planning cost more than running the dispatch path's small statements,
  // bench/dispatch); a statement already in use (a query iterated while
  // another runs the same text) gets a fresh one of its own.
  class Stmt {
   public:
    Stmt(const Db& db, const char* sql) : db_(db) {
      auto it = db_.cache_.find(std::string_view(sql));
      if (it == db_.cache_.end() && db_.cache_.size() < kMaxCached) {
        sqlite3_stmt* stmt = nullptr;
        db_.check(sqlite3_prepare_v3(db_.db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr),
                  sql);
        it = db_.cache_.emplace(std::string(sql), Cached{stmt, false}).first;
      }
      if (it != db_.cache_.end() && !it->second.in_use) {
        cached_ = &it->second;
        cached_->in_use = true;
        stmt_ = cached_->stmt;
        return;
      }
      db_.check(sqlite3_prepare_v2(db_.db_, sql, -1, &stmt_, nullptr), sql);
    }
    ~Stmt() {
      if (!cached_) {
        sqlite3_finalize(stmt_);
        return;
      }
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
      cached_->in_use = false;
    }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;

    Stmt& bind(int i, std::int64_t v) {
      db_.check(sqlite3_bind_int64(stmt_, i, v), "bind");
      return *this;
    }
    Stmt& bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
    Stmt& bind(int i, std::uint64_t v) { return bind(i, static_cast<std::int64_t>(v)); }
    Stmt& bind(int i, double v) {
      db_.check(sqlite3_bind_double(stmt_, i, v), "bind");
      return *this;
    }
    Stmt& bind(int i, std::string_view v) {
      db_.check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT),
                "bind");
      return *this;
    }
    Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
    Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
    template <class T>
    Stmt& bind(int i, const std::optional<T>& v) {
      if (v) return bind(i, *v);
      db_.check(sqlite3_bind_null(stmt_, i), "bind");
      return *this;
    }
    // True while there is a row.
    bool step() {
      const int rc = sqlite3_step(stmt_);
      db_.check(rc, sqlite3_sql(stmt_));
      return rc == SQLITE_ROW;
    }
    void run() {
      while (step()) {
      }
    }
    bool null(int c) const { return sqlite3_column_type(stmt_, c) == SQLITE_NULL; }
    std::int64_t i64(int c) const { return sqlite3_column_int64(stmt_, c); }
    double f64(int c) const { return sqlite3_column_double(stmt_, c); }
    std::string text(int c) const {
      const auto* p = sqlite3_column_text(stmt_, c);
      return p ? std::string(reinterpret_cast<const char*>(p),
                             static_cast<std::size_t>(sqlite3_column_bytes(stmt_, c)))
               : std::string();
    }
    std::optional<std::int64_t> opt_i64(int c) const {
      return null(c) ? std::nullopt : std::optional(i64(c));
    }
    std::optional<double> opt_f64(int c) const {
      return null(c) ? std::nullopt : std::optional(f64(c));
    }

   private:
    const Db& db_;
    sqlite3_stmt* stmt_ = nullptr;
    Cached* cached_ = nullptr;
  };

  std::int64_t last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
  // Prepared statements by their text (Stmt).
  mutable std::map<std::string, Cached, std::less<>> cache_;
};

SqliteStore::SqliteStore(const std::filesystem::path& path, Mode mode)
    : path_(path), db_(std::make_unique<Db>(path, mode)) {
  // WAL keeps its index in shared memory (the -shm file, mmapped), which
  // only the processes of one host share: "WAL does not work over a network
  // filesystem" (https://www.sqlite.org/wal.html). A rollback journal needs
  // only POSIX locks on the store's file, which NFS and the cluster
  // filesystems carry across hosts, so a reader on another host sees whole
  // transactions. With synchronous=FULL, SQLite's default for it: NORMAL
  // can corrupt a rollback-journal file if the power fails mid-commit
  // (https://www.sqlite.org/pragma.html#pragma_synchronous). Even so SQLite
  // counts on the filesystem's locks being right
  // (https://www.sqlite.org/useovernet.html); many jobs on one sweep are
  // the PostgreSQL store's job.
  const std::string chosen = journal_override();
  filesystem_ = network_filesystem(path);
  if (mode == Mode::kReadWrite) {
    const bool wal = chosen.empty() ? !filesystem_ : chosen == "wal";
    try {
      // Out of WAL (a store from an older xpscale) only with the file to
      // itself: no other connection may have it open.
      Db::Stmt set(*db_, wal ? "PRAGMA journal_mode=WAL" : "PRAGMA journal_mode=DELETE");
      if (set.step()) journal_mode_ = set.text(0);
    } catch (const StoreError& e) {
      if (wal) throw;
      throw StoreError("store " + path_.string() + " is in WAL mode and " +
                           (filesystem_ ? "on " + *filesystem_ + ", where it needs"
                                        : "XPSCALE_SQLITE_JOURNAL=delete asks for") +
                           " a rollback journal; switching needs the store to itself, and "
                           "another process has it open (xpscale report or dashboard?): " +
                           e.what(),
                       e.transient());
    }
    db_->exec(wal ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL");
    db_->exec(kSchema);
    Db::Stmt get(*db_, "SELECT value FROM meta WHERE key = 'schema_version'");
    if (get.step()) {
      if (get.text(0) != std::to_string(kSchemaVersion))
        throw StoreError("store " + path.string() + " has schema version " + get.text(0) +
                         "; this xpscale reads version " + std::to_string(kSchemaVersion));
    } else {
      Db::Stmt(*db_, "INSERT INTO meta(key, value) VALUES ('schema_version', ?)")
          .bind(1, std::to_string(kSchemaVersion))
          .run();
    }
    struct stat st {};
    if (::stat(path_.c_str(), &st) == 0) identity_ = {st.st_dev, st.st_ino};
  } else {
    // A WAL store on a network filesystem (written by an older xpscale, with
    // XPSCALE_SQLITE_JOURNAL=wal, or by a run on the host that exports it)
    // can be read from the host of the run writing it, or once no run does:
    // not from another host while one does.
    if (filesystem_ && chosen != "wal" && wal_header(path_))
      if (const auto holder = lock_holder(path_); holder && !held_on_this_host(*holder))
        throw StoreError("store " + path_.string() + " is in WAL mode on " + *filesystem_ +
                         " and a run on another host is writing it (" + *holder +
                         "): WAL's index is memory shared only on that host, so it cannot be "
                         "read safely from here. Read it there or after the run ends; a run "
                         "keeps a store on a network filesystem in a rollback journal, which "
                         "any host can read, unless XPSCALE_SQLITE_JOURNAL=wal (set "
                         "XPSCALE_SQLITE_JOURNAL=delete for a run whose out_dir is on its own "
                         "disk but read by other hosts)");
    // A file that is not a store fails here, with SQLite's message.
    Db::Stmt(*db_, "SELECT count(*) FROM trials").run();
  }
}

void SqliteStore::check_still_there() {
  // SQLite keeps writing to a file that was deleted (or replaced) under
  // it, and every result would be lost without a word; checked at most
  // once a second, on commit.
  const auto now = std::chrono::steady_clock::now();
  if (!identity_ || now - checked_ < std::chrono::seconds(1)) return;
  checked_ = now;
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0 || std::pair(st.st_dev, st.st_ino) != *identity_)
    throw StoreError("store " + path_.string() +
                     " was deleted or replaced while this run was writing it; the results "
                     "since then cannot be kept. Restore it or start the sweep again");
}

SqliteStore::~SqliteStore() {
  if (in_tx_) {
    try {
      db_->exec("COMMIT");
    } catch (...) {
      // Destructors must not throw; what was not committed is lost as after a crash.
    }
  }
}

void SqliteStore::begin() {
  if (in_tx_) return;
  db_->exec("BEGIN IMMEDIATE");
  in_tx_ = true;
}

void SqliteStore::commit() {
  if (!in_tx_) return;
  check_still_there();
  db_->exec("COMMIT");
  in_tx_ = false;
}

void SqliteStore::rollback() noexcept {
  if (!in_tx_) return;
  in_tx_ = false;
  try {
    db_->exec("ROLLBACK");
  } catch (const StoreError&) {  // SQLite may have rolled back already (disk full, I/O error)
  }
}

std::optional<SweepRow> SqliteStore::sweep() const {
  Db::Stmt q(*db_,
             "SELECT name, config_path, config_text, config_hash, metric, goal, planned, "
             "created_at, updated_at FROM sweep WHERE id = 1");
  if (!q.step()) return std::nullopt;
  SweepRow r;
  r.name = q.text(0);
  r.config_path = q.text(1);
  r.config_text = q.text(2);
  r.config_hash = q.text(3);
  r.metric = q.text(4);
  r.goal = q.text(5) == "maximize" ? Goal::kMaximize : Goal::kMinimize;
  r.planned = static_cast<std::uint64_t>(q.i64(6));
  r.created_at = q.f64(7);
  r.updated_at = q.f64(8);
  return r;
}

void SqliteStore::write_sweep(const SweepRow& r) {
  Db::Stmt(*db_,
           "INSERT INTO sweep(id, name, config_path, config_text, config_hash, metric, goal, "
           "planned, created_at, updated_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
           "ON CONFLICT(id) DO UPDATE SET name = excluded.name, config_path = "
           "excluded.config_path, config_text = excluded.config_text, config_hash = "
           "excluded.config_hash, metric = excluded.metric, goal = excluded.goal, planned = "
           "excluded.planned, updated_at = excluded.updated_at")
      .bind(1, r.name)
      .bind(2, r.config_path)
      .bind(3, r.config_text)
      .bind(4, r.config_hash)
      .bind(5, r.metric)
      .bind(6, goal_name(r.goal))
      .bind(7, r.planned)
      .bind(8, r.created_at)
      .bind(9, r.updated_at)
      .run();
}

std::int64_t SqliteStore::begin_run(int world_size, int groups, int ranks_per_trial,
                                    const std::string& hosts, bool resumed, double now) {
  Db::Stmt(*db_,
           "INSERT INTO runs(started_at, world_size, groups, ranks_per_trial, hosts, resumed) "
           "VALUES (?, ?, ?, ?, ?, ?)")
      .bind(1, now)
      .bind(2, world_size)
      .bind(3, groups)
      .bind(4, ranks_per_trial)
      .bind(5, hosts)
      .bind(6, resumed ? 1 : 0)
      .run();
  return db_->last_insert_rowid();
}

void SqliteStore::end_run(std::int64_t run, const std::string& status,
                          const nlohmann::json& summary, double now) {
  Db::Stmt(*db_, "UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE run = ?")
      .bind(1, now)
      .bind(2, status)
      .bind(3, summary.dump())
      .bind(4, run)
      .run();
}

namespace {
constexpr const char* kTrialColumns =
    "id, params, status, attempts, grp, ranks, hosts, started_at, finished_at, reason, "
    "stderr_tail, last_step, best_value, best_step, last_metrics";

template <class Stmt>
TrialRow read_trial(const Stmt& q) {
  TrialRow t;
  t.id = static_cast<std::uint64_t>(q.i64(0));
  t.params = nlohmann::ordered_json::parse(q.text(1));
  t.status = parse_trial_status(q.text(2));
  t.attempts = static_cast<int>(q.i64(3));
  if (auto g = q.opt_i64(4)) t.group = static_cast<int>(*g);
  t.ranks = q.text(5);
  t.hosts = q.text(6);
  t.started_at = q.opt_f64(7);
  t.finished_at = q.opt_f64(8);
  t.reason = q.text(9);
  t.stderr_tail = q.text(10);
  t.last_step = q.opt_i64(11);
  t.best_value = q.opt_f64(12);
  t.best_step = q.opt_i64(13);
  if (!q.null(14)) t.last_metrics = nlohmann::json::parse(q.text(14));
  return t;
}
}  // namespace

std::vector<TrialRow> SqliteStore::trials() const {
  Db::Stmt q(*db_, (std::string("SELECT ") + kTrialColumns + " FROM trials ORDER BY id").c_str());
  std::vector<TrialRow> out;
  while (q.step()) out.push_back(read_trial(q));
  return out;
}

std::optional<TrialRow> SqliteStore::trial(std::uint64_t id) const {
  Db::Stmt q(*db_, (std::string("SELECT ") + kTrialColumns + " FROM trials WHERE id = ?").c_str());
  q.bind(1, id);
  if (!q.step()) return std::nullopt;
  return read_trial(q);
}

std::vector<AttemptRow> SqliteStore::attempts(std::optional<std::uint64_t> trial) const {
  Db::Stmt q(*db_,
             "SELECT trial, attempt, run, grp, ranks, hosts, started_at, finished_at, status, "
             "reason, stderr_tail FROM attempts WHERE ?1 IS NULL OR trial = ?1 "
             "ORDER BY trial, attempt");
  q.bind(1, trial);
  std::vector<AttemptRow> out;
  while (q.step()) {
    AttemptRow a;
    a.trial = static_cast<std::uint64_t>(q.i64(0));
    a.attempt = static_cast<int>(q.i64(1));
    a.run = q.i64(2);
    a.group = static_cast<int>(q.i64(3));
    a.ranks = q.text(4);
    a.hosts = q.text(5);
    a.started_at = q.f64(6);
    a.finished_at = q.opt_f64(7);
    a.status = q.text(8);
    a.reason = q.text(9);
    a.stderr_tail = q.text(10);
    out.push_back(std::move(a));
  }
  return out;
}

void SqliteStore::put_queued_trial(std::uint64_t id, const nlohmann::ordered_json& params) {
  Db::Stmt(*db_,
           "INSERT INTO trials(id, params, status) VALUES (?, ?, 'queued') "
           "ON CONFLICT(id) DO UPDATE SET params = excluded.params, status = 'queued', "
           "reason = '', stderr_tail = '', last_step = NULL, best_value = NULL, best_step = "
           "NULL, last_metrics = NULL, finished_at = NULL")
      .bind(1, id)
      .bind(2, params.dump())
      .run();
}

void SqliteStore::set_trial_params(std::uint64_t id, const nlohmann::ordered_json& params) {
  Db::Stmt(*db_, "UPDATE trials SET params = ? WHERE id = ?")
      .bind(1, params.dump())
      .bind(2, id)
      .run();
}

void SqliteStore::put_state(const std::string& name, const nlohmann::json& state) {
  Db::Stmt(*db_, "INSERT OR REPLACE INTO algorithm_state(name, state) VALUES (?, ?)")
      .bind(1, name)
      .bind(2, state.dump())
      .run();
}

std::optional<nlohmann::json> SqliteStore::state(const std::string& name) const {
  Db::Stmt q(*db_, "SELECT state FROM algorithm_state WHERE name = ?");
  q.bind(1, name);
  if (!q.step()) return std::nullopt;
  auto j = nlohmann::json::parse(q.text(0), nullptr, false);
  if (j.is_discarded())
    throw StoreError("store " + path_.string() + ": the saved state of '" + name + "' is not JSON");
  return j;
}

void SqliteStore::start_attempt(std::uint64_t trial, int attempt, std::int64_t run, int group,
                                const std::string& ranks, const std::string& hosts, double now) {
  Db::Stmt(*db_,
           "INSERT OR REPLACE INTO attempts(trial, attempt, run, grp, ranks, hosts, started_at, "
           "status) VALUES (?, ?, ?, ?, ?, ?, ?, 'running')")
      .bind(1, trial)
      .bind(2, attempt)
      .bind(3, run)
      .bind(4, group)
      .bind(5, ranks)
      .bind(6, hosts)
      .bind(7, now)
      .run();
  Db::Stmt(*db_,
           "UPDATE trials SET status = 'running', attempts = ?, grp = ?, ranks = ?, hosts = ?, "
           "started_at = ?, finished_at = NULL WHERE id = ?")
      .bind(1, attempt)
      .bind(2, group)
      .bind(3, ranks)
      .bind(4, hosts)
      .bind(5, now)
      .bind(6, trial)
      .run();
}

void SqliteStore::finish_attempt(std::uint64_t trial, int attempt, TrialStatus status,
                                 const std::string& reason, const std::string& stderr_tail,
                                 double now, bool final) {
  Db::Stmt(*db_,
           "UPDATE attempts SET finished_at = ?, status = ?, reason = ?, stderr_tail = ? "
           "WHERE trial = ? AND attempt = ?")
      .bind(1, now)
      .bind(2, trial_status_name(status))
      .bind(3, reason)
      .bind(4, stderr_tail)
      .bind(5, trial)
      .bind(6, attempt)
      .run();
  Db::Stmt(*db_,
           "UPDATE trials SET status = ?, finished_at = ?, reason = ?, stderr_tail = ? "
           "WHERE id = ?")
      .bind(1, final ? trial_status_name(status) : trial_status_name(TrialStatus::kQueued))
      .bind(2, now)
      .bind(3, reason)
      .bind(4, stderr_tail)
      .bind(5, trial)
      .run();
}

int SqliteStore::mark_interrupted(double now) {
  Db::Stmt(*db_,
           "UPDATE attempts SET status = 'interrupted', finished_at = ?, reason = ? "
           "WHERE status = 'running'")
      .bind(1, now)
      .bind(2, kRunEndedReason)
      .run();
  Db::Stmt(*db_, "UPDATE runs SET status = 'killed', finished_at = ? WHERE status = 'running'")
      .bind(1, now)
      .run();
  Db::Stmt n(*db_, "SELECT count(*) FROM trials WHERE status = 'running'");
  n.step();
  const int count = static_cast<int>(n.i64(0));
  Db::Stmt(*db_, "UPDATE trials SET status = 'queued' WHERE status = 'running'").run();
  return count;
}

void SqliteStore::interrupt_attempt(std::uint64_t trial, int attempt, const std::string& reason,
                                    double now, bool lost) {
  Db::Stmt(*db_,
           "UPDATE attempts SET status = ?, finished_at = ?, reason = ? "
           "WHERE trial = ? AND attempt = ?")
      .bind(1, lost ? "lost" : "interrupted")
      .bind(2, now)
      .bind(3, reason)
      .bind(4, trial)
      .bind(5, attempt)
      .run();
  Db::Stmt(*db_, "UPDATE trials SET status = 'queued', finished_at = ?, reason = ? WHERE id = ?")
      .bind(1, now)
      .bind(2, reason)
      .bind(3, trial)
      .run();
}

void SqliteStore::add_metrics(std::uint64_t trial, int attempt, std::int64_t step, double time,
                              std::optional<double> value, const nlohmann::json& values,
                              Goal goal) {
  const std::string text = values.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  Db::Stmt(*db_,
           "INSERT INTO metrics(trial, attempt, step, time, value, values_json) "
           "VALUES (?, ?, ?, ?, ?, ?)")
      .bind(1, trial)
      .bind(2, attempt)
      .bind(3, step)
      .bind(4, time)
      .bind(5, value)
      .bind(6, text)
      .run();
  const char* better = goal == Goal::kMaximize ? ">" : "<";
  const std::string sql = std::string("UPDATE trials SET last_step = ?1, last_metrics = ?2, ") +
                          "best_step = CASE WHEN ?3 IS NOT NULL AND (best_value IS NULL OR ?3 " +
                          better + " best_value) THEN ?1 ELSE best_step END, " +
                          "best_value = CASE WHEN ?3 IS NOT NULL AND (best_value IS NULL OR ?3 " +
                          better + " best_value) THEN ?3 ELSE best_value END WHERE id = ?4";
  Db::Stmt(*db_, sql.c_str()).bind(1, step).bind(2, text).bind(3, value).bind(4, trial).run();
}

std::vector<MetricRow> SqliteStore::metrics(std::optional<std::uint64_t> trial,
                                            bool with_values) const {
  Db::Stmt q(*db_, with_values
                       ? "SELECT trial, attempt, step, time, value, values_json FROM metrics "
                         "WHERE ?1 IS NULL OR trial = ?1 ORDER BY trial, attempt, step, rowid"
                       : "SELECT trial, attempt, step, time, value FROM metrics "
                         "WHERE ?1 IS NULL OR trial = ?1 ORDER BY trial, attempt, step, rowid");
  q.bind(1, trial);
  std::vector<MetricRow> out;
  while (q.step()) {
    MetricRow m;
    m.trial = static_cast<std::uint64_t>(q.i64(0));
    m.attempt = static_cast<int>(q.i64(1));
    m.step = q.i64(2);
    m.time = q.f64(3);
    m.value = q.opt_f64(4);
    if (with_values) m.values = nlohmann::json::parse(q.text(5));
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace xpscale
