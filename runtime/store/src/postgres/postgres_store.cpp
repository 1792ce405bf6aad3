// The PostgreSQL engine of the store (postgres_store.h), on the checked
// connection of pg_connection.h.
#include "xpscale/store/postgres_store.h"

#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string_view>
#include <utility>
#include <vector>

#include "pg_connection.h"

namespace xpscale {
namespace {

using pg::kLockClass;
using pg::kServerNow;
using pg::Param;
using pg::Result;

// The advisory lock a run holds for its life (session level: the server
// drops it when the connection ends, however the process ends): one
// bigint key, (sweep << 32) | run, which pg_locks shows as classid = sweep,
// objid = run, objsubid = 1.
std::int64_t run_lock_key(std::int64_t sweep, std::int64_t run) {
  return static_cast<std::int64_t>((static_cast<std::uint64_t>(sweep) << 32) |
                                   (static_cast<std::uint64_t>(run) & 0xffffffffu));
}

// The runs of sweep $1 that are alive: running, heartbeat within their
// lease, and their connection still holding their lock. A server restart
// drops every lock, and each job takes its own again only when it
// reconnects (before anything else: on_connect_): a run that has not
// renewed since the server started is judged by its lease alone, so the
// first job back does not reap the others.
constexpr const char* kLiveRuns =
    "SELECT r.run FROM xpscale.runs r WHERE r.sweep = $1 AND r.status = 'running' "
    "AND r.heartbeat_at >= extract(epoch from clock_timestamp()) - r.lease_s "
    "AND (EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
    "AND l.objsubid = 1 AND l.classid = r.sweep::oid AND l.objid = r.run::oid) "
    "OR r.heartbeat_at < extract(epoch from pg_postmaster_start_time()))";

}  // namespace

bool is_postgres_url(std::string_view location) {
  return location.starts_with("postgresql://") || location.starts_with("postgres://");
}

std::string url_without_password(std::string_view url) {
  std::string out(url);
  if (const auto scheme = out.find("://"); scheme != std::string::npos) {
    const auto start = scheme + 3;
    const auto end = out.find_first_of("/?", start);
    const auto at = out.rfind('@', end == std::string::npos ? std::string::npos : end);
    if (at != std::string::npos && at >= start) {
      const auto colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) out.erase(colon, at - colon);
    }
  }
  // password=... among the query parameters (or key=value words)
  for (std::size_t p = 0; (p = out.find("password=", p)) != std::string::npos;) {
    if (p > 0 && out[p - 1] != '?' && out[p - 1] != '&' && out[p - 1] != ' ') {
      p += 9;
      continue;
    }
    auto e = out.find_first_of("& ", p);
    if (e == std::string::npos) e = out.size();
    const bool first = p > 0 && out[p - 1] == '?';
    if (e < out.size() && out[e] == '&' && first) ++e;  // "?password=x&a" -> "?a"
    const std::size_t from = first || p == 0 ? p : p - 1;  // "&password=x" goes whole
    out.erase(from, e - from);
    p = from;
  }
  if (!out.empty() && (out.back() == '?')) out.pop_back();
  return out;
}

namespace {

std::string percent_decoded(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

std::string url_password(std::string_view url_view) {
  const std::string url(url_view);
  const auto scheme = url.find("://");
  if (scheme != std::string::npos) {
    const auto start = scheme + 3;
    const auto end = url.find_first_of("/?", start);
    const auto at = url.rfind('@', end == std::string::npos ? std::string::npos : end);
    if (at != std::string::npos && at >= start) {
      const auto colon = url.find(':', start);
      if (colon != std::string::npos && colon < at)
        return percent_decoded(url.substr(colon + 1, at - colon - 1));
    }
  }
  for (std::size_t p = 0; (p = url.find("password=", p)) != std::string::npos; p += 9) {
    if (p > 0 && url[p - 1] != '?' && url[p - 1] != '&') continue;
    const auto e = url.find('&', p);
    return percent_decoded(url.substr(p + 9, e == std::string::npos ? e : e - p - 9));
  }
  return "";
}

PostgresStore::PostgresStore(const std::string& url, const std::string& sweep, Mode mode)
    : sweep_name_(sweep), mode_(mode) {
  if (sweep.empty())
    throw StoreError("a PostgreSQL store needs a sweep name", false, ErrorCategory::kUser);
  db_ = std::make_unique<pg::Connection>(url, ", sweep " + sweep, mode == Mode::kReadOnly);
  if (mode == Mode::kReadWrite) {
    pg::migrate(*db_);
    db_->exec("INSERT INTO xpscale.sweeps(name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
              {sweep_name_});
  } else {
    pg::check_schema(*db_);
  }
  db_->on_connect_ = [this] {
    // A reconnection dropped the run's lock with the old session: take it
    // again. If the lease expired meanwhile, another job has reaped the run
    // and heartbeat() says so; fencing keeps its writes out until then.
    if (run_ && sweep_id_)
      db_->exec("SELECT pg_advisory_lock($1::bigint)", {run_lock_key(*sweep_id_, *run_)});
  };
}

PostgresStore::~PostgresStore() {
  if (db_ && db_->in_tx()) {
    try {
      flush_queued();
      db_->commit();  // as SqliteStore: what was not committed is lost only on a crash
    } catch (...) {
    }
  }
}

int PostgresStore::schema_version() { return pg::schema_version(); }

std::string PostgresStore::migration(int from_version) { return pg::migration(from_version); }

std::string PostgresStore::location() const { return db_->where(); }


std::optional<std::int64_t> PostgresStore::sweep_id() const {
  if (!sweep_id_) {
    const auto r = db_->exec("SELECT id FROM xpscale.sweeps WHERE name = $1", {sweep_name_});
    if (r.rows()) sweep_id_ = r.i64(0, 0);
  }
  return sweep_id_;
}

std::int64_t PostgresStore::writable_sweep_id() {
  if (mode_ == Mode::kReadOnly)
    throw StoreError("store " + location() + " is open read-only");
  if (auto id = sweep_id()) return *id;
  throw StoreError("store " + location() + ": the sweep's row is gone (deleted by hand?)");
}

std::string PostgresStore::change_marker() const {
  const auto id = sweep_id();
  if (!id) return "none";
  const auto q = db().exec(
      "SELECT (SELECT coalesce(max(seq), 0) FROM xpscale.metrics WHERE sweep = $1), "
      "count(*), coalesce(sum(attempts), 0), count(*) FILTER (WHERE status = 'running'), "
      "count(*) FILTER (WHERE status = 'queued'), coalesce(max(started_at), 0), "
      "coalesce(max(finished_at), 0), (SELECT coalesce(sum(length(state)), 0) "
      "FROM xpscale.algorithm_state WHERE sweep = $1) FROM xpscale.trials WHERE sweep = $1",
      {*id});
  std::string marker;
  for (int c = 0; c < 8; ++c) marker += q.text(0, c) + ':';
  return marker;
}

bool PostgresStore::in_transaction() const { return db_->in_tx(); }
void PostgresStore::begin() { db_->begin(); }

void PostgresStore::commit() {
  try {
    flush_queued();
  } catch (...) {
    rollback();  // the server aborted the transaction: end it here too
    throw;
  }
  db_->commit();
}

void PostgresStore::rollback() noexcept {
  queued_.clear();
  queued_at_.clear();
  db_->rollback();
}

pg::Connection& PostgresStore::db() const {
  flush_queued();
  return *db_;
}

void PostgresStore::flush_queued() const {
  if (queued_.empty()) return;
  // One statement for them all; each row [id, params text], taken apart by
  // the server. Cleared first: a failed write aborts the transaction, whose
  // writes the caller replays (RetryingStore) or gives up.
  nlohmann::json rows = nlohmann::json::array();
  for (auto& [id, params] : queued_) rows.push_back({id, std::move(params)});
  queued_.clear();
  queued_at_.clear();
  db_->exec(
      "INSERT INTO xpscale.trials(sweep, id, params, status) "
      "SELECT $1, (r->>0)::bigint, r->>1, 'queued' FROM json_array_elements($2::json) r "
      "ON CONFLICT (sweep, id) DO UPDATE SET params = excluded.params, status = 'queued', "
      "reason = '', stderr_tail = '', last_step = NULL, best_value = NULL, best_step = NULL, "
      "last_metrics = NULL, finished_at = NULL",
      {*sweep_id_, rows.dump()});
}

std::optional<SweepRow> PostgresStore::sweep() const {
  const auto id = sweep_id();
  if (!id) return std::nullopt;
  const auto q = db().exec(
      "SELECT name, config_path, config_text, config_hash, metric, goal, planned, created_at, "
      "updated_at FROM xpscale.sweeps WHERE id = $1 AND config_hash IS NOT NULL",
      {*id});
  if (q.rows() == 0) return std::nullopt;
  SweepRow r;
  r.name = q.text(0, 0);
  r.config_path = q.text(0, 1);
  r.config_text = q.text(0, 2);
  r.config_hash = q.text(0, 3);
  r.metric = q.text(0, 4);
  r.goal = q.text(0, 5) == "maximize" ? Goal::kMaximize : Goal::kMinimize;
  r.planned = static_cast<std::uint64_t>(q.i64(0, 6));
  r.created_at = q.f64(0, 7);
  r.updated_at = q.f64(0, 8);
  return r;
}

void PostgresStore::write_sweep(const SweepRow& r) {
  db().exec(
      "UPDATE xpscale.sweeps SET config_path = $2, config_text = $3, config_hash = $4, "
      "metric = $5, goal = $6, planned = $7, created_at = COALESCE(created_at, $8), "
      "updated_at = $9 WHERE id = $1",
      {writable_sweep_id(), r.config_path, r.config_text, r.config_hash, r.metric,
       std::string(goal_name(r.goal)), r.planned, r.created_at, r.updated_at});
}

std::int64_t PostgresStore::begin_run(int world_size, int groups, int ranks_per_trial,
                                      const std::string& hosts, bool resumed, double now) {
  const std::int64_t id = writable_sweep_id();
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string owner = std::string(host) + " pid " + std::to_string(::getpid());
  // The sweep's row counts its runs: its row lock numbers concurrent jobs' runs apart.
  const auto r = db().exec(
      (std::string("WITH n AS (UPDATE xpscale.sweeps SET runs = runs + 1 WHERE id = $1 "
                   "RETURNING runs) INSERT INTO xpscale.runs(sweep, run, started_at, world_size, "
                   "groups, ranks_per_trial, hosts, resumed, heartbeat_at, lease_s, owner) "
                   "SELECT $1, n.runs, $2, $3, $4, $5, $6, $7, ") +
       kServerNow + ", $8, $9 FROM n RETURNING run")
          .c_str(),
      {id, now, world_size, groups, ranks_per_trial, hosts, resumed, lease_s_, owner});
  const std::int64_t run = r.i64(0, 0);
  db().exec("SELECT pg_advisory_lock($1::bigint)", {run_lock_key(id, run)});
  db().exec("SELECT set_config('application_name', $1, false)", {"xpscale run " + owner});
  run_ = run;
  return run;
}

void PostgresStore::end_run(std::int64_t run, const std::string& status,
                            const nlohmann::json& summary, double now) {
  db().exec(
      "UPDATE xpscale.runs SET finished_at = $3, status = $4, summary = $5 "
      "WHERE sweep = $1 AND run = $2",
      {writable_sweep_id(), run, now, status, summary.dump()});
}

namespace {
constexpr const char* kTrialColumns =
    "id, params, status, attempts, grp, ranks, hosts, started_at, finished_at, reason, "
    "stderr_tail, last_step, best_value, best_step, last_metrics";

TrialRow read_trial(const Result& q, int row) {
  TrialRow t;
  t.id = static_cast<std::uint64_t>(q.i64(row, 0));
  t.params = nlohmann::ordered_json::parse(q.text(row, 1));
  t.status = parse_trial_status(q.text(row, 2));
  t.attempts = static_cast<int>(q.i64(row, 3));
  if (auto g = q.opt_i64(row, 4)) t.group = static_cast<int>(*g);
  t.ranks = q.text(row, 5);
  t.hosts = q.text(row, 6);
  t.started_at = q.opt_f64(row, 7);
  t.finished_at = q.opt_f64(row, 8);
  t.reason = q.text(row, 9);
  t.stderr_tail = q.text(row, 10);
  t.last_step = q.opt_i64(row, 11);
  t.best_value = q.opt_f64(row, 12);
  t.best_step = q.opt_i64(row, 13);
  if (!q.null(row, 14)) t.last_metrics = nlohmann::json::parse(q.text(row, 14));
  return t;
}

// The sweep metric's value as stored: NaN is no value (as SQLite stores it),
// so that it is never anyone's best.
std::optional<double> stored_value(std::optional<double> v) {
  if (v && std::isnan(*v)) return std::nullopt;
  return v;
}
}  // namespace

std::vector<TrialRow> PostgresStore::trials() const {
  std::vector<TrialRow> out;
  const auto id = sweep_id();
  if (!id) return out;
  const auto q = db().exec((std::string("SELECT ") + kTrialColumns +
                            " FROM xpscale.trials WHERE sweep = $1 ORDER BY id")
                               .c_str(),
                           {*id});
  out.reserve(static_cast<std::size_t>(q.rows()));
  for (int i = 0; i < q.rows(); ++i) out.push_back(read_trial(q, i));
  return out;
}

std::optional<TrialRow> PostgresStore::trial(std::uint64_t trial_id) const {
  const auto id = sweep_id();
  if (!id) return std::nullopt;
  const auto q = db().exec((std::string("SELECT ") + kTrialColumns +
                            " FROM xpscale.trials WHERE sweep = $1 AND id = $2")
                               .c_str(),
                           {*id, trial_id});
  if (q.rows() == 0) return std::nullopt;
  return read_trial(q, 0);
}

std::vector<AttemptRow> PostgresStore::attempts(std::optional<std::uint64_t> trial) const {
  std::vector<AttemptRow> out;
  const auto id = sweep_id();
  if (!id) return out;
  const auto q = db().exec(
      "SELECT trial, attempt, run, grp, ranks, hosts, started_at, finished_at, status, reason, "
      "stderr_tail FROM xpscale.attempts WHERE sweep = $1 AND ($2::bigint IS NULL OR trial = $2) "
      "ORDER BY trial, attempt",
      {*id, trial});
  out.reserve(static_cast<std::size_t>(q.rows()));
  for (int i = 0; i < q.rows(); ++i) {
    AttemptRow a;
    a.trial = static_cast<std::uint64_t>(q.i64(i, 0));
    a.attempt = static_cast<int>(q.i64(i, 1));
    a.run = q.i64(i, 2);
    a.group = static_cast<int>(q.i64(i, 3));
    a.ranks = q.text(i, 4);
    a.hosts = q.text(i, 5);
    a.started_at = q.f64(i, 6);
    a.finished_at = q.opt_f64(i, 7);
    a.status = q.text(i, 8);
    a.reason = q.text(i, 9);
    a.stderr_tail = q.text(i, 10);
    out.push_back(std::move(a));
  }
  return out;
}

void PostgresStore::put_queued_trial(std::uint64_t id, const nlohmann::ordered_json& params) {
  const std::int64_t sweep = writable_sweep_id();
  if (db_->in_tx()) {
    // The same id twice in one transaction: the later params win, as two
    // upserts in a row would.
    auto [at, fresh] = queued_at_.try_emplace(id, queued_.size());
    if (fresh)
      queued_.emplace_back(id, params.dump());
    else
      queued_[at->second].second = params.dump();
    return;
  }
  db().exec(
      "INSERT INTO xpscale.trials(sweep, id, params, status) VALUES ($1, $2, $3, 'queued') "
      "ON CONFLICT (sweep, id) DO UPDATE SET params = excluded.params, status = 'queued', "
      "reason = '', stderr_tail = '', last_step = NULL, best_value = NULL, best_step = NULL, "
      "last_metrics = NULL, finished_at = NULL",
      {sweep, id, params.dump()});
}

void PostgresStore::set_trial_params(std::uint64_t id, const nlohmann::ordered_json& params) {
  db().exec("UPDATE xpscale.trials SET params = $3 WHERE sweep = $1 AND id = $2",
            {writable_sweep_id(), id, params.dump()});
}

void PostgresStore::put_state(const std::string& name, const nlohmann::json& state) {
  db().exec(
      "INSERT INTO xpscale.algorithm_state(sweep, name, state) VALUES ($1, $2, $3) "
      "ON CONFLICT (sweep, name) DO UPDATE SET state = excluded.state",
      {writable_sweep_id(), name, state.dump()});
}

std::optional<nlohmann::json> PostgresStore::state(const std::string& name) const {
  const auto id = sweep_id();
  if (!id) return std::nullopt;
  const auto q =
      db().exec("SELECT state FROM xpscale.algorithm_state WHERE sweep = $1 AND name = $2",
                {*id, name});
  if (q.rows() == 0) return std::nullopt;
  auto j = nlohmann::json::parse(q.text(0, 0), nullptr, false);
  if (j.is_discarded())
    throw StoreError("store " + location() + ": the saved state of '" + name + "' is not JSON");
  return j;
}

void PostgresStore::start_attempt(std::uint64_t trial, int attempt, std::int64_t run, int group,
                                  const std::string& ranks, const std::string& hosts, double now) {
  db().exec(
      "WITH a AS (INSERT INTO xpscale.attempts(sweep, trial, attempt, run, grp, ranks, hosts, "
      "started_at, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'running') "
      "ON CONFLICT (sweep, trial, attempt) DO UPDATE SET run = excluded.run, grp = excluded.grp, "
      "ranks = excluded.ranks, hosts = excluded.hosts, started_at = excluded.started_at, "
      "finished_at = NULL, status = 'running', reason = '', stderr_tail = '') "
      "UPDATE xpscale.trials SET status = 'running', attempts = $3, grp = $5, ranks = $6, "
      "hosts = $7, started_at = $8, finished_at = NULL WHERE sweep = $1 AND id = $2",
      {writable_sweep_id(), trial, attempt, run, group, ranks, hosts, now});
}

// Writes about an attempt apply only while it is this run's and running
// (fencing, shared_sweep.h); $RUN NULL (no run begun here, e.g. tests and
// tools) applies them as they come.
void PostgresStore::finish_attempt(std::uint64_t trial, int attempt, TrialStatus status,
                                   const std::string& reason, const std::string& stderr_tail,
                                   double now, bool final) {
  db().exec(
      "WITH a AS (UPDATE xpscale.attempts SET finished_at = $4, status = $5, reason = $6, "
      "stderr_tail = $7 WHERE sweep = $1 AND trial = $2 AND attempt = $3 "
      "AND ($9::bigint IS NULL OR (run = $9 AND status = 'running')) RETURNING 1) "
      "UPDATE xpscale.trials SET status = $8, finished_at = $4, reason = $6, stderr_tail = $7 "
      "WHERE sweep = $1 AND id = $2 AND ($9::bigint IS NULL OR EXISTS (SELECT 1 FROM a))",
      {writable_sweep_id(), trial, attempt, now, std::string(trial_status_name(status)), reason,
       stderr_tail,
       std::string(final ? trial_status_name(status) : trial_status_name(TrialStatus::kQueued)),
       run_});
}

int PostgresStore::mark_interrupted(double now) { return reap(-1, now); }

void PostgresStore::interrupt_attempt(std::uint64_t trial, int attempt, const std::string& reason,
                                      double now, bool lost) {
  db().exec(
      "WITH a AS (UPDATE xpscale.attempts SET status = $4, finished_at = $5, reason = $6 "
      "WHERE sweep = $1 AND trial = $2 AND attempt = $3 "
      "AND ($7::bigint IS NULL OR (run = $7 AND status = 'running')) RETURNING 1) "
      "UPDATE xpscale.trials SET status = 'queued', finished_at = $5, reason = $6 "
      "WHERE sweep = $1 AND id = $2 AND ($7::bigint IS NULL OR EXISTS (SELECT 1 FROM a))",
      {writable_sweep_id(), trial, attempt, lost ? "lost" : "interrupted", now, reason, run_});
}

void PostgresStore::add_metrics(std::uint64_t trial, int attempt, std::int64_t step, double time,
                                std::optional<double> value, const nlohmann::json& values,
                                Goal goal) {
  const std::string text = values.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  // One round trip: the row and the trial's last/best together.
  const std::string better = goal == Goal::kMaximize ? ">" : "<";
  const std::string is_better =
      "$6::float8 IS NOT NULL AND (best_value IS NULL OR $6::float8 " + better + " best_value)";
  const std::string sql =
      "WITH ok AS (SELECT 1 WHERE $8::bigint IS NULL OR EXISTS (SELECT 1 FROM xpscale.attempts f "
      "WHERE f.sweep = $1 AND f.trial = $2 AND f.attempt = $3 AND f.run = $8 "
      "AND f.status = 'running')), "
      "m AS (INSERT INTO xpscale.metrics(sweep, trial, attempt, step, time, value, values_json) "
      "SELECT $1, $2, $3, $4, $5, $6, $7 FROM ok) "
      "UPDATE xpscale.trials SET last_step = $4, last_metrics = $7, "
      "best_step = CASE WHEN " + is_better + " THEN $4 ELSE best_step END, "
      "best_value = CASE WHEN " + is_better + " THEN $6::float8 ELSE best_value END "
      "WHERE sweep = $1 AND id = $2 AND EXISTS (SELECT 1 FROM ok)";
  db().exec(sql.c_str(),
            {writable_sweep_id(), trial, attempt, step, time, stored_value(value), text, run_});
}

// ---- Many jobs on one sweep (shared_sweep.h) ----

void PostgresStore::lock_sweep() {
  db().exec("SELECT pg_advisory_xact_lock($1::int, $2::int)", {kLockClass, writable_sweep_id()});
}

namespace {

// The claim (claim_trial()) as CTEs c (the trial), t (its row) and n (its
// attempt) of a larger statement, on the statement's parameters: $1 the
// sweep, and those named here. SKIP LOCKED: a trial another job is
// claiming right now is passed over, never handed out twice; retried and
// interrupted trials (attempts > 0, they may hold checkpoints) go first,
// then by id. `on`: a condition that must hold for any claim.
struct ClaimParams {
  const char *run, *on, *group, *ranks, *hosts, *now;
};

std::string claim_ctes(const ClaimParams& p) {
  const std::string run = p.run, group = p.group, ranks = p.ranks, hosts = p.hosts, now = p.now;
  return "c AS (SELECT id FROM xpscale.trials WHERE sweep = $1 AND status = 'queued' AND " +
         std::string(p.on) +
         " ORDER BY (attempts > 0) DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED), "
         "t AS (UPDATE xpscale.trials t SET status = 'running', attempts = t.attempts + 1, grp = " +
         group + ", ranks = " + ranks + ", hosts = " + hosts + ", started_at = " + now +
         ", finished_at = NULL FROM c WHERE t.sweep = $1 AND t.id = c.id "
         "RETURNING t.id, t.params, t.attempts), "
         "n AS (INSERT INTO xpscale.attempts(sweep, trial, attempt, run, grp, ranks, hosts, "
         "started_at, status) SELECT $1, id, attempts, " +
         run + ", " + group + ", " + ranks + ", " + hosts + ", " + now +
         ", 'running' FROM t ON CONFLICT (sweep, trial, attempt) DO UPDATE SET "
         "run = excluded.run, grp = excluded.grp, ranks = excluded.ranks, hosts = excluded.hosts, "
         "started_at = excluded.started_at, finished_at = NULL, status = 'running', reason = '', "
         "stderr_tail = '') ";
}

// The claimed trial's columns (none: nothing was queued): id, params,
// attempt, its failed attempts, its attempts whose run ended under them
// (`ended`: the parameter that holds kRunEndedReason).
std::string claim_columns(const std::string& ended) {
  return "t.id, t.params, t.attempts, "
         "(SELECT count(*) FROM xpscale.attempts x WHERE x.sweep = $1 AND x.trial = t.id "
         "AND x.status = 'failed'), "
         "(SELECT count(*) FROM xpscale.attempts x WHERE x.sweep = $1 AND x.trial = t.id "
         "AND (x.status = 'lost' OR (x.status = 'interrupted' AND x.reason = " +
         ended + "))) ";
}

std::optional<Claim> read_claim(const Result& q, int col) {
  if (q.rows() == 0 || q.null(0, col)) return std::nullopt;
  Claim c;
  c.id = static_cast<std::uint64_t>(q.i64(0, col));
  c.params = nlohmann::ordered_json::parse(q.text(0, col + 1));
  c.attempt = static_cast<int>(q.i64(0, col + 2));
  c.failed = static_cast<int>(q.i64(0, col + 3));
  c.crashed = static_cast<int>(q.i64(0, col + 4));
  return c;
}

}  // namespace

std::optional<Claim> PostgresStore::claim_trial(std::int64_t run, int group,
                                                const std::string& ranks, const std::string& hosts,
                                                double now) {
  static const std::string sql =
      "WITH " + claim_ctes({"$2", "true", "$3", "$4", "$5", "$6"}) + "SELECT " +
      claim_columns("$7") + "FROM t";
  return read_claim(db().exec(sql.c_str(), {writable_sweep_id(), run, group, ranks, hosts, now,
                                            kRunEndedReason}),
                    0);
}

Finished PostgresStore::finish_owned(std::int64_t run, const AttemptEnd& e,
                                     const std::optional<ClaimFor>& next) {
  // The finish (a: the attempt, f: the trial's row), fenced as
  // finish_attempt() is; then the claim. One snapshot for all: the claim
  // cannot take the trial this statement finishes (running in the
  // snapshot), nor one queued again by it. Applied: the attempt was
  // written, or (a retry after a commit lost in flight) this run had
  // already ended it exactly so.
  static const std::string sql =
      "WITH a AS (UPDATE xpscale.attempts SET finished_at = $4, status = $5, reason = $6, "
      "stderr_tail = $7 WHERE sweep = $1 AND trial = $2 AND attempt = $3 AND run = $9 "
      "AND status = 'running' RETURNING 1), "
      "f AS (UPDATE xpscale.trials SET status = $8, finished_at = $4, reason = $6, "
      "stderr_tail = $7 WHERE sweep = $1 AND id = $2 AND EXISTS (SELECT 1 FROM a) "
      "RETURNING 1), " +
      claim_ctes({"$9", "$10::boolean", "$11", "$12", "$13", "$14"}) +
      "SELECT EXISTS (SELECT 1 FROM a) OR EXISTS (SELECT 1 FROM xpscale.attempts x "
      "WHERE x.sweep = $1 AND x.trial = $2 AND x.attempt = $3 AND x.run = $9 AND x.status = $5 "
      "AND x.finished_at = $4 AND x.reason = $6), " +
      claim_columns("$15") + "FROM (SELECT 1) one LEFT JOIN t ON true";
  const std::string status(trial_status_name(e.status));
  const auto q = db().exec(
      sql.c_str(),
      {writable_sweep_id(), e.trial, e.attempt, e.at, status, e.reason, e.stderr_tail,
       std::string(e.final ? status : trial_status_name(TrialStatus::kQueued)), run,
       next.has_value(), next ? next->group : 0, next ? next->ranks : std::string(),
       next ? next->hosts : std::string(), next ? next->now : 0.0, kRunEndedReason});
  return {.applied = q.boolean(0, 0), .next = read_claim(q, 1)};
}

SweepCounts PostgresStore::heartbeat(std::int64_t run) {
  const auto q = db().exec(
      (std::string("WITH h AS (UPDATE xpscale.runs SET heartbeat_at = ") + kServerNow +
       " WHERE sweep = $1 AND run = $2 AND status = 'running' RETURNING 1) "
       "SELECT (SELECT count(*) FROM h), count(*) FILTER (WHERE status = 'queued'), "
       "count(*) FILTER (WHERE status = 'running') FROM xpscale.trials WHERE sweep = $1")
          .c_str(),
      {writable_sweep_id(), run});
  SweepCounts c;
  c.alive = q.i64(0, 0) > 0;
  c.queued = static_cast<std::uint64_t>(q.i64(0, 1));
  c.running = static_cast<std::uint64_t>(q.i64(0, 2));
  return c;
}

int PostgresStore::reap(std::int64_t run, double now) {
  // Runs that are not alive (kLiveRuns) are ended ("killed", as a run
  // killed with its job); their running attempts end "interrupted" with
  // kRunEndedReason (counted against the trial's retries) and their
  // trials are queued again. Attempts of runs without a row count too.
  const auto q = db().exec(
      (std::string("WITH live AS (") + kLiveRuns +
       "), r AS (UPDATE xpscale.runs SET status = 'killed', finished_at = $3 "
       "WHERE sweep = $1 AND status = 'running' AND run <> $2 AND run NOT IN (SELECT run FROM "
       "live)), "
       "a AS (UPDATE xpscale.attempts SET status = 'interrupted', finished_at = $3, reason = $4 "
       "WHERE sweep = $1 AND status = 'running' AND run <> $2 AND run NOT IN (SELECT run FROM "
       "live) RETURNING trial), "
       "t AS (UPDATE xpscale.trials SET status = 'queued' WHERE sweep = $1 AND status = 'running' "
       "AND id IN (SELECT trial FROM a) RETURNING 1) SELECT count(*) FROM t")
          .c_str(),
      {writable_sweep_id(), run, now, kRunEndedReason});
  return static_cast<int>(q.i64(0, 0));
}

int PostgresStore::release_untracked(std::int64_t run,
                                     const std::vector<std::pair<std::uint64_t, int>>& held,
                                     double now) {
  nlohmann::json pairs = nlohmann::json::array();
  for (const auto& [trial, attempt] : held) pairs.push_back({trial, attempt});
  const auto q = db().exec(
      "WITH h AS (SELECT (x->>0)::bigint AS trial, (x->>1)::int AS attempt "
      "FROM json_array_elements($5::json) x), "
      "a AS (UPDATE xpscale.attempts SET status = 'interrupted', finished_at = $3, reason = $4 "
      "WHERE sweep = $1 AND run = $2 AND status = 'running' AND (trial, attempt) NOT IN "
      "(SELECT trial, attempt FROM h) RETURNING trial), "
      "t AS (UPDATE xpscale.trials SET status = 'queued' WHERE sweep = $1 AND status = 'running' "
      "AND id IN (SELECT trial FROM a) RETURNING 1) SELECT count(*) FROM t",
      {writable_sweep_id(), run, now,
       "this job lost track of the attempt (a store call was replayed after its reply was lost)",
       pairs.dump()});
  return static_cast<int>(q.i64(0, 0));
}

bool PostgresStore::owns_attempt(std::uint64_t trial, int attempt, std::int64_t run) {
  return db_
             ->exec(
                 "SELECT 1 FROM xpscale.attempts WHERE sweep = $1 AND trial = $2 AND attempt = $3 "
                 "AND run = $4 AND status = 'running' FOR UPDATE",
                 {writable_sweep_id(), trial, attempt, run})
             .rows() > 0;
}

std::uint64_t PostgresStore::next_trial_id() {
  return static_cast<std::uint64_t>(
      db().exec("SELECT coalesce(max(id) + 1, 0) FROM xpscale.trials WHERE sweep = $1",
                {writable_sweep_id()})
          .i64(0, 0));
}

std::vector<std::string> PostgresStore::live_runs() {
  std::vector<std::string> out;
  const auto id = sweep_id();
  if (!id) return out;
  const auto q = db().exec(
      (std::string("SELECT run, owner, to_char(to_timestamp(started_at), 'YYYY-MM-DD "
                   "HH24:MI:SS TZ') FROM xpscale.runs WHERE sweep = $1 AND run IN (") +
       kLiveRuns + ") ORDER BY run")
          .c_str(),
      {*id});
  for (int i = 0; i < q.rows(); ++i)
    out.push_back("run " + q.text(i, 0) + ": " + q.text(i, 1) + ", since " + q.text(i, 2));
  return out;
}

std::vector<MetricRow> PostgresStore::metrics(std::optional<std::uint64_t> trial,
                                              bool with_values) const {
  std::vector<MetricRow> out;
  const auto id = sweep_id();
  if (!id) return out;
  const auto q = db().exec(
      with_values ? "SELECT trial, attempt, step, time, value, values_json FROM xpscale.metrics "
                    "WHERE sweep = $1 AND ($2::bigint IS NULL OR trial = $2) "
                    "ORDER BY trial, attempt, step, seq"
                  : "SELECT trial, attempt, step, time, value FROM xpscale.metrics "
                    "WHERE sweep = $1 AND ($2::bigint IS NULL OR trial = $2) "
                    "ORDER BY trial, attempt, step, seq",
      {*id, trial});
  out.reserve(static_cast<std::size_t>(q.rows()));
  for (int i = 0; i < q.rows(); ++i) {
    MetricRow m;
    m.trial = static_cast<std::uint64_t>(q.i64(i, 0));
    m.attempt = static_cast<int>(q.i64(i, 1));
    m.step = q.i64(i, 2);
    m.time = q.f64(i, 3);
    m.value = q.opt_f64(i, 4);
    if (with_values) m.values = nlohmann::json::parse(q.text(i, 5));
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace xpscale
