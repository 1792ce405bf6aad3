// The PostgreSQL connection, parameters and schema migrations
// (pg_connection.h).
#include "pg_connection.h"

#include <charconv>
#include <cstring>
#include <vector>

#include "xpscale/core/utf8.h"
#include "xpscale/store/store.h"

namespace xpscale::pg {
namespace {

// Migrations: kMigrations[v] brings a store from version v to v + 1. A
// store is only ever migrated forward, in one transaction with the
// version's update, so a failed migration leaves the old version intact.
const char* const kMigrations[] = {
    // 0 -> 1: the tables of store.h, keyed by sweep.
    R"sql(
CREATE SCHEMA IF NOT EXISTS xpscale;
CREATE TABLE xpscale.meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE xpscale.sweeps(
  id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE,
  config_path TEXT, config_text TEXT, config_hash TEXT, metric TEXT, goal TEXT,
  planned BIGINT, created_at DOUBLE PRECISION, updated_at DOUBLE PRECISION,
  runs BIGINT NOT NULL DEFAULT 0);
CREATE TABLE xpscale.runs(
  sweep BIGINT NOT NULL REFERENCES xpscale.sweeps(id) ON DELETE CASCADE,
  run BIGINT NOT NULL, started_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION,
  world_size INTEGER NOT NULL, groups INTEGER NOT NULL, ranks_per_trial INTEGER NOT NULL,
  hosts TEXT NOT NULL, resumed BOOLEAN NOT NULL, status TEXT NOT NULL DEFAULT 'running',
  summary TEXT, PRIMARY KEY (sweep, run));
CREATE TABLE xpscale.trials(
  sweep BIGINT NOT NULL REFERENCES xpscale.sweeps(id) ON DELETE CASCADE,
  id BIGINT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, grp INTEGER, ranks TEXT NOT NULL DEFAULT '',
  hosts TEXT NOT NULL DEFAULT '', started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION,
  reason TEXT NOT NULL DEFAULT '', stderr_tail TEXT NOT NULL DEFAULT '',
  last_step BIGINT, best_value DOUBLE PRECISION, best_step BIGINT, last_metrics TEXT,
  PRIMARY KEY (sweep, id));
CREATE TABLE xpscale.attempts(
  sweep BIGINT NOT NULL REFERENCES xpscale.sweeps(id) ON DELETE CASCADE,
  trial BIGINT NOT NULL, attempt INTEGER NOT NULL, run BIGINT NOT NULL, grp INTEGER NOT NULL,
  ranks TEXT NOT NULL, hosts TEXT NOT NULL, started_at DOUBLE PRECISION NOT NULL,
  finished_at DOUBLE PRECISION, status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
  stderr_tail TEXT NOT NULL DEFAULT '', PRIMARY KEY (sweep, trial, attempt));
CREATE TABLE xpscale.metrics(
  seq BIGSERIAL PRIMARY KEY,
  sweep BIGINT NOT NULL REFERENCES xpscale.sweeps(id) ON DELETE CASCADE,
  trial BIGINT NOT NULL, attempt INTEGER NOT NULL, step BIGINT NOT NULL,
  time DOUBLE PRECISION NOT NULL, value DOUBLE PRECISION, values_json TEXT NOT NULL);
CREATE INDEX metrics_by_trial ON xpscale.metrics(sweep, trial, attempt, step, seq);
CREATE TABLE xpscale.algorithm_state(
  sweep BIGINT NOT NULL REFERENCES xpscale.sweeps(id) ON DELETE CASCADE,
  name TEXT NOT NULL, state TEXT NOT NULL, PRIMARY KEY (sweep, name));
INSERT INTO xpscale.meta(key, value) VALUES ('schema_version', '0');
)sql",
    // 1 -> 2: many jobs on one sweep (shared_sweep.h): each run's lease
    // (renewed heartbeat, on the server's clock) and who holds it; queued
    // trials found in claim order by an index, so that a claim costs the same
    // at 100 or 100,000 trials.
    R"sql(
ALTER TABLE xpscale.runs ADD COLUMN heartbeat_at DOUBLE PRECISION,
  ADD COLUMN lease_s DOUBLE PRECISION NOT NULL DEFAULT 60,
  ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE INDEX trials_queued ON xpscale.trials(sweep, (attempts > 0) DESC, id)
  WHERE status = 'queued';
)sql",
// 2 -> 3: the queue of sweeps (sweep_queue.h): entries served by
    // agents, by priority then age, each held by one agent's lease; named
    // queues that can be paused. One active entry per sweep name.
    R"sql(
CREATE TABLE xpscale.queues(
  name TEXT PRIMARY KEY, paused BOOLEAN NOT NULL DEFAULT false, changed_by TEXT,
  changed_at DOUBLE PRECISION);
CREATE TABLE xpscale.queue(
  id BIGSERIAL PRIMARY KEY, queue TEXT NOT NULL, sweep TEXT NOT NULL,
  config_path TEXT NOT NULL, config_text TEXT NOT NULL, config_hash TEXT NOT NULL,
  out_dir TEXT NOT NULL, cwd TEXT NOT NULL, ranks_per_trial BIGINT NOT NULL, gpus_per_rank BIGINT NOT NULL,
  priority INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'queued',
  cancel_requested BOOLEAN NOT NULL DEFAULT false,
  enqueued_at DOUBLE PRECISION NOT NULL, enqueued_by TEXT NOT NULL,
  started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION,
  agent TEXT, heartbeat_at DOUBLE PRECISION, lease_s DOUBLE PRECISION NOT NULL DEFAULT 60,
  runs INTEGER NOT NULL DEFAULT 0, exit_code INTEGER, message TEXT NOT NULL DEFAULT '');
CREATE INDEX queue_waiting ON xpscale.queue(queue, priority DESC, id) WHERE status = 'queued';
CREATE UNIQUE INDEX queue_one_active_entry_per_sweep ON xpscale.queue(sweep)
  WHERE status IN ('queued', 'running');
)sql",
};
constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));

// SQLSTATEs worth a retry: the connection (08), a serialization failure or
// deadlock (40001, 40P01), lock not available (55P03), insufficient
// resources (53: disk full, out of memory, too many connections), the
// server shutting down or starting (57P01-57P03), a cancelled statement.
bool transient_state(std::string_view state) {
  return state.starts_with("08") || state.starts_with("53") || state == "40001" ||
         state == "40P01" || state == "55P03" || state == "57P01" || state == "57P02" ||
         state == "57P03" || state == "57014";
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string pg_text(std::string_view s) {
  std::string out;
  for (char c : valid_utf8(s)) {
    if (c == '\0')
      out += "\xEF\xBF\xBD";
    else
      out += c;
  }
  return out;
}

Param::Param(double v) {
  if (std::isnan(v)) {
    text = "NaN";
  } else if (std::isinf(v)) {
    text = v > 0 ? "Infinity" : "-Infinity";
  } else {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest exact
    text = std::string(buf, r.ptr);
  }
}

Connection::Connection(const std::string& url, std::string context, bool read_only)
    : read_only_(read_only), context_(std::move(context)) {
  describe(url);
  // Defaults first: what the URL (expanded from dbname, last) sets wins.
  std::vector<const char*> keys, values;
  auto add = [&](const char* k, const char* v) {
    keys.push_back(k);
    values.push_back(v);
  };
  if (!std::getenv("PGCONNECT_TIMEOUT")) add("connect_timeout", "10");
  add("keepalives", "1");
  add("keepalives_idle", "5");
  add("keepalives_interval", "2");
  add("keepalives_count", "3");
  add("fallback_application_name", "xpscale");
  add("dbname", url.c_str());
  keys.push_back(nullptr);
  values.push_back(nullptr);
  conn_ = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (!conn_) throw StoreError("cannot open store " + where() + ": out of memory");
  if (PQstatus(conn_) != CONNECTION_OK) {
    const std::string msg = redacted(trimmed(PQerrorMessage(conn_)));
    PQfinish(conn_);
    conn_ = nullptr;
    // At open a refused password, an unknown host or database, or a
    // server that does not answer is the user's to fix.
    throw StoreError("cannot open store " + where() + ": " + msg +
                         (msg.find("password") != std::string::npos
                              ? " (the password comes from PGPASSWORD or ~/.pgpass)"
                              : ""),
                     false, ErrorCategory::kUser);
  }
  session_setup();
}

Connection::~Connection() { PQfinish(conn_); }

Result Connection::exec(const char* sql, std::initializer_list<Param> params) {
  ensure_connected();
  return run(sql, params);
}

void Connection::exec_script(const char* sql) {
  ensure_connected();
  PQclear(check(PQexec(conn_, sql)));
}

void Connection::begin() {
  if (in_tx_) return;
  ensure_connected();
  run("BEGIN", {});
  in_tx_ = true;
}

void Connection::commit() {
  if (!in_tx_) return;
  // A failed COMMIT leaves no transaction open: the server rolled it back.
  in_tx_ = false;
  run("COMMIT", {});
}

void Connection::rollback() noexcept {
  if (!in_tx_) return;
  in_tx_ = false;
  if (PQstatus(conn_) != CONNECTION_OK) return;  // the server dropped it with the connection
  PQclear(PQexec(conn_, "ROLLBACK"));
}

// A statement with parameters is prepared on its first use on this
// connection and executed by name afterwards: the server parses and plans
// it once instead of at every call, which for the one statement of a
// finished trial (finish + next claim) is about half of its cost. The
// texts are the store's own, a few dozen; past kMaxPrepared (a bug making
// texts) they run unprepared rather than fill the server's memory.
Result Connection::run(const char* sql, std::initializer_list<Param> params) {
  constexpr std::size_t kMaxPrepared = 256;
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p.text ? p.text->c_str() : nullptr);
  const int n = static_cast<int>(values.size());
  if (n == 0 || (prepared_.size() >= kMaxPrepared && !prepared_.contains(sql)))
    return Result(check(PQexecParams(conn_, sql, n, nullptr, values.data(), nullptr, nullptr, 0)));
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    const std::string name = "xpscale_" + std::to_string(prepared_.size());
    PQclear(check(PQprepare(conn_, name.c_str(), sql, n, nullptr)));
    it = prepared_.emplace(sql, name).first;
  }
  return Result(
      check(PQexecPrepared(conn_, it->second.c_str(), n, values.data(), nullptr, nullptr, 0)));
}

PGresult* Connection::check(PGresult* r) {
  const ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string msg = trimmed(r ? PQresultErrorMessage(r) : PQerrorMessage(conn_));
  if (msg.empty()) msg = trimmed(PQerrorMessage(conn_));
  PQclear(r);
  const bool lost = PQstatus(conn_) != CONNECTION_OK;
  throw StoreError("store " + where() + ": " + redacted(msg),
                   lost || (state && transient_state(state)));
}

// Reconnects a dropped connection, but never inside a transaction: its
// writes died with the connection and must be replayed by the caller
// (RetryingStore rolls back, begins again and replays them).
void Connection::ensure_connected() {
  if (PQstatus(conn_) == CONNECTION_OK) return;
  if (in_tx_)
    throw StoreError("store " + where() + ": the connection was lost in a transaction", true);
  PQreset(conn_);
  prepared_.clear();  // they died with the old session
  if (PQstatus(conn_) != CONNECTION_OK)
    throw StoreError("store " + where() + ": cannot reconnect: " +
                         redacted(trimmed(PQerrorMessage(conn_))),
                     true);
  session_setup();
}

void Connection::session_setup() {
  // Readers never write, whatever a bug would try.
  if (read_only_) PQclear(PQexec(conn_, "SET default_transaction_read_only = on"));
  PQclear(PQexec(conn_, "SET client_min_messages = warning"));  // no NOTICEs on stderr
  if (on_connect_) on_connect_();
}

// The URL as shown: scheme, user, host, port and database, no password
// or options (which may carry one).
void Connection::describe(const std::string& url) {
  // The password as written, to take out of libpq's messages.
  if (const auto scheme = url.find("://"); scheme != std::string::npos) {
    const auto at = url.find('@', scheme + 3);
    const auto slash = url.find('/', scheme + 3);
    if (at != std::string::npos && (slash == std::string::npos || at < slash)) {
      const auto colon = url.find(':', scheme + 3);
      if (colon != std::string::npos && colon < at)
        password_ = url.substr(colon + 1, at - colon - 1);
    }
  }
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(url.c_str(), &err);
  if (!opts) {
    const std::string msg = err ? redacted(trimmed(err)) : "cannot parse it";
    PQfreemem(err);
    throw StoreError("store URL " + redacted(url) + ": " + msg, false, ErrorCategory::kUser);
  }
  std::string user, host, port, db;
  for (auto* o = opts; o->keyword; ++o) {
    if (!o->val) continue;
    if (!std::strcmp(o->keyword, "user")) user = o->val;
    if (!std::strcmp(o->keyword, "host")) host = o->val;
    if (!std::strcmp(o->keyword, "hostaddr") && host.empty()) host = o->val;
    if (!std::strcmp(o->keyword, "port")) port = o->val;
    if (!std::strcmp(o->keyword, "dbname")) db = o->val;
    if (!std::strcmp(o->keyword, "password") && password_.empty()) password_ = o->val;
  }
  PQconninfoFree(opts);
  display_ = "postgresql://" + (user.empty() ? "" : user + "@") + host +
             (port.empty() ? "" : ":" + port) + "/" + db;
}

std::string Connection::redacted(std::string s) const {
  if (!password_.empty())
    for (std::size_t p; (p = s.find(password_)) != std::string::npos;)
      s.replace(p, password_.size(), "***");
  return s;
}

int schema_version() { return kSchemaVersion; }

const char* migration(int from_version) {
  if (from_version < 0 || from_version >= kSchemaVersion)
    throw StoreError("no migration from schema version " + std::to_string(from_version));
  return kMigrations[from_version];
}

void migrate(Connection& db) {
  // One process migrates; the others wait on the lock and find it done.
  db.begin();
  try {
    db.exec("SELECT pg_advisory_xact_lock($1::int, 0)", {kLockClass});
    const auto r = db.exec(
        "SELECT to_regnamespace('xpscale') IS NOT NULL, to_regclass('xpscale.meta') IS NOT NULL");
    int version = 0;
    if (r.boolean(0, 1)) {
      const auto v = db.exec("SELECT value FROM xpscale.meta WHERE key = 'schema_version'");
      if (v.rows() == 0)
        throw StoreError(db.where() + ": xpscale.meta has no schema_version; not an xpscale store",
                         false, ErrorCategory::kUser);
      version = std::atoi(v.text(0, 0).c_str());
    } else if (r.boolean(0, 0)) {
      throw StoreError(db.where() +
                           ": the database has a schema 'xpscale' that is not an xpscale store "
                           "(no xpscale.meta); it is left alone. Use another database",
                       false, ErrorCategory::kUser);
    }
    if (version > kSchemaVersion)
      throw StoreError(db.where() + " has schema version " + std::to_string(version) +
                           ", written by a newer xpscale; this xpscale reads version " +
                           std::to_string(kSchemaVersion) + ". Upgrade xpscale",
                       false, ErrorCategory::kUser);
    for (int v = version; v < kSchemaVersion; ++v) db.exec_script(kMigrations[v]);
    if (version < kSchemaVersion)
      db.exec("UPDATE xpscale.meta SET value = $1 WHERE key = 'schema_version'",
                {std::to_string(kSchemaVersion)});
    db.commit();
  } catch (...) {
    db.rollback();
    throw;
  }
}

void check_schema(Connection& db) {
  const auto r = db.exec(
      "SELECT to_regclass('xpscale.meta') IS NOT NULL, to_regclass('xpscale.sweeps') IS NOT "
      "NULL");
  if (!r.boolean(0, 0) || !r.boolean(0, 1))
    throw StoreError(db.where() + " holds no xpscale store (no schema xpscale with its tables)",
                     false, ErrorCategory::kUser);
  const auto v = db.exec("SELECT value FROM xpscale.meta WHERE key = 'schema_version'");
  if (v.rows() == 0 || v.text(0, 0) != std::to_string(kSchemaVersion))
    throw StoreError(db.where() + " has schema version " +
                         (v.rows() ? v.text(0, 0) : std::string("(none)")) +
                         "; this xpscale reads version " + std::to_string(kSchemaVersion) +
                         (v.rows() && std::atoi(v.text(0, 0).c_str()) < kSchemaVersion
                              ? " (a read-write open, e.g. xpscale run --resume, upgrades it)"
                              : ""),
                     false, ErrorCategory::kUser);
}

}  // namespace xpscale::pg
