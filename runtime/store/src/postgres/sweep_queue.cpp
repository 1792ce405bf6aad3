// The queue of sweeps (sweep_queue.h) on the checked connection of
// pg_connection.h.
#include "xpscale/store/sweep_queue.h"

#include <algorithm>
#include <cctype>
#include <string>

#include "pg_connection.h"
#include "xpscale/store/store.h"

namespace xpscale {
namespace {

using pg::kServerNow;
using pg::Result;

const std::string kNow = kServerNow;

const std::string kColumns =
    "q.id, q.queue, q.sweep, q.config_path, q.config_text, q.config_hash, q.out_dir, q.cwd, "
    "q.ranks_per_trial, q.gpus_per_rank, q.priority, q.status, q.cancel_requested, "
    "q.enqueued_at, q.enqueued_by, q.started_at, q.finished_at, q.heartbeat_at, "
    "COALESCE(q.agent, ''), q.runs, q.exit_code, q.message";

// The sweep's trials, by status, and whether the entry's queue is paused:
// after kColumns in list() and find().
const std::string kCountsJoin =
    " LEFT JOIN xpscale.queues p ON p.name = q.queue"
    " LEFT JOIN LATERAL (SELECT count(*) AS total,"
    " count(*) FILTER (WHERE t.status = 'completed') AS completed,"
    " count(*) FILTER (WHERE t.status = 'failed') AS failed,"
    " count(*) FILTER (WHERE t.status = 'running') AS running"
    " FROM xpscale.sweeps s JOIN xpscale.trials t ON t.sweep = s.id WHERE s.name = q.sweep) c"
    " ON true";
const std::string kCountsColumns =
    ", c.total, c.completed, c.failed, c.running, COALESCE(p.paused, false)";

QueueEntry read_entry(const Result& r, int row, bool counts) {
  QueueEntry e;
  int c = 0;
  e.id = r.i64(row, c++);
  e.queue = r.text(row, c++);
  e.sweep = r.text(row, c++);
  e.config_path = r.text(row, c++);
  e.config_text = r.text(row, c++);
  e.config_hash = r.text(row, c++);
  e.out_dir = r.text(row, c++);
  e.cwd = r.text(row, c++);
  e.ranks_per_trial = r.i64(row, c++);
  e.gpus_per_rank = r.i64(row, c++);
  e.priority = static_cast<int>(r.i64(row, c++));
  e.status = r.text(row, c++);
  e.cancel_requested = r.boolean(row, c++);
  e.enqueued_at = r.f64(row, c++);
  e.enqueued_by = r.text(row, c++);
  e.started_at = r.opt_f64(row, c++);
  e.finished_at = r.opt_f64(row, c++);
  e.heartbeat_at = r.opt_f64(row, c++);
  e.agent = r.text(row, c++);
  e.runs = static_cast<int>(r.i64(row, c++));
  if (const auto x = r.opt_i64(row, c++)) e.exit_code = static_cast<int>(*x);
  e.message = r.text(row, c++);
  if (counts) {
    e.trials = r.i64(row, c++);
    e.completed = r.i64(row, c++);
    e.failed = r.i64(row, c++);
    e.running = r.i64(row, c++);
    e.paused = r.boolean(row, c++);
  }
  return e;
}

// A text[] literal of queue names, which the commands check to be
// [A-Za-z0-9._-]+ (nothing to quote); nullopt (SQL NULL) for all queues.
std::optional<std::string> name_array(const std::vector<std::string>& names) {
  if (names.empty()) return std::nullopt;
  std::string a = "{";
  for (const auto& n : names) {
    if (a.size() > 1) a += ',';
    a += '"' + n + '"';
  }
  return a + "}";
}

bool is_id(const std::string& key) {
  return !key.empty() && key.size() < 19 &&
         std::all_of(key.begin(), key.end(), [](unsigned char c) { return std::isdigit(c); });
}

}  // namespace

SweepQueue::SweepQueue(const std::string& url, bool read_only)
    : db_(std::make_unique<pg::Connection>(url, std::string(), read_only)) {
  if (read_only)
    pg::check_schema(*db_);
  else
    pg::migrate(*db_);
}

SweepQueue::~SweepQueue() = default;

std::string SweepQueue::location() const { return db_->where(); }

QueueEntry SweepQueue::enqueue(const NewQueueEntry& e) {
  // The unique index on active entries decides between enqueues of one
  // sweep at once: ON CONFLICT waits for the other's transaction, and the
  // one that loses is told which entry won (a SELECT first, then INSERT,
  // let both pass the SELECT and the loser fail on the index).
  for (int attempt = 0; attempt < 3; ++attempt) {
    const auto r = db_->exec(
        ("INSERT INTO xpscale.queue AS q(queue, sweep, config_path, config_text, config_hash, "
         "out_dir, cwd, ranks_per_trial, gpus_per_rank, priority, enqueued_at, enqueued_by) VALUES "
         "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, " + kNow + ", $11) ON CONFLICT (sweep) WHERE "
         "status IN ('queued', 'running') DO NOTHING RETURNING " + kColumns)
            .c_str(),
        {e.queue, e.sweep, e.config_path, e.config_text, e.config_hash, e.out_dir, e.cwd,
         e.ranks_per_trial, e.gpus_per_rank, e.priority, e.enqueued_by});
    if (r.rows()) return read_entry(r, 0, false);
    const auto active = db_->exec(
        "SELECT id, queue, status FROM xpscale.queue WHERE sweep = $1 "
        "AND status IN ('queued', 'running')",
        {e.sweep});
    if (active.rows())
      throw StoreError("sweep '" + e.sweep + "' is already " + active.text(0, 2) + " on queue '" +
                           active.text(0, 1) + "' as entry " + active.text(0, 0) +
                           "; cancel it first (xpscale queue cancel " + active.text(0, 0) +
                           ") or give this config another `name:`",
                       false, ErrorCategory::kUser);
    // The entry in the way ended in between: try again.
  }
  throw StoreError("queue: the entries of sweep '" + e.sweep + "' kept changing; enqueue it again",
                   true);
}

std::int64_t SweepQueue::position(std::int64_t id) {
  return db_
      ->exec(
          "SELECT count(*) FROM xpscale.queue q JOIN xpscale.queue me ON me.id = $1 "
          "WHERE q.queue = me.queue AND q.status = 'queued' AND q.id <> me.id "
          "AND (q.priority > me.priority OR (q.priority = me.priority AND q.id < me.id))",
          {id})
      .i64(0, 0);
}

std::optional<QueueEntry> SweepQueue::claim(const AgentOffer& offer) {
  // A running entry whose cancel was asked for and whose agent is gone
  // will not be stopped by anyone: it is cancelled.
  db_->exec(("UPDATE xpscale.queue SET status = 'cancelled', finished_at = " + kNow +
             ", message = message || ' (its agent had stopped)' WHERE status = 'running' AND "
             "cancel_requested AND heartbeat_at < " + kNow + " - lease_s")
                .c_str());
  const auto r = db_->exec(
      ("WITH c AS (SELECT q.id FROM xpscale.queue q LEFT JOIN xpscale.queues p ON p.name = "
       "q.queue WHERE ($1::text[] IS NULL OR q.queue = ANY($1::text[])) "
       "AND NOT COALESCE(p.paused, false) AND NOT q.cancel_requested "
       "AND q.ranks_per_trial <= $2 AND q.ranks_per_trial * q.gpus_per_rank <= $3 "
       "AND (q.status = 'queued' OR (q.status = 'running' AND q.heartbeat_at < " + kNow +
       " - q.lease_s)) ORDER BY q.priority DESC, q.id LIMIT 1 FOR UPDATE OF q SKIP LOCKED) "
       "UPDATE xpscale.queue q SET status = 'running', agent = $4, heartbeat_at = " + kNow +
       ", lease_s = $5, started_at = COALESCE(q.started_at, " + kNow +
       "), runs = q.runs + 1, message = '' FROM c WHERE q.id = c.id RETURNING " + kColumns)
          .c_str(),
      {name_array(offer.queues), offer.ranks, offer.gpus, offer.agent, offer.lease_s});
  if (r.rows() == 0) return std::nullopt;
  return read_entry(r, 0, false);
}

SweepQueue::Beat SweepQueue::heartbeat(std::int64_t id, const std::string& agent) {
  const auto r = db_->exec(("UPDATE xpscale.queue SET heartbeat_at = " + kNow +
                            " WHERE id = $1 AND agent = $2 AND status = 'running' "
                            "RETURNING cancel_requested")
                               .c_str(),
                           {id, agent});
  if (r.rows() == 0) return Beat::kLost;
  return r.boolean(0, 0) ? Beat::kCancel : Beat::kHeld;
}

bool SweepQueue::finish(std::int64_t id, const std::string& agent, const std::string& status,
                        std::optional<int> exit_code, const std::string& message) {
  if (status != "done" && status != "failed" && status != "cancelled" && status != "queued")
    throw StoreError("queue: no entry status '" + status + "'");
  // Put back after a cancel was asked for (the agent was stopped before a
  // heartbeat told it), an entry is cancelled: queued, no agent would ever
  // take it (claim() skips cancel_requested) and it would stay forever.
  const std::string set =
      status == "queued"
          ? "status = CASE WHEN cancel_requested THEN 'cancelled' ELSE $3 END, "
            "message = CASE WHEN cancel_requested THEN 'cancelled; ' || $5 ELSE $5 END, "
            "finished_at = CASE WHEN cancel_requested THEN " + kNow + " END, "
            "agent = CASE WHEN cancel_requested THEN agent END, "
            "heartbeat_at = CASE WHEN cancel_requested THEN heartbeat_at END"
          : "status = $3, message = $5, finished_at = " + kNow;
  const auto r = db_->exec(
      ("UPDATE xpscale.queue SET " + set + ", exit_code = $4"
       " WHERE id = $1 AND agent = $2 AND status = 'running' RETURNING id")
          .c_str(),
      {id, agent, status, exit_code ? pg::Param(*exit_code) : pg::Param(std::nullopt), message});
  return r.rows() > 0;
}

std::vector<QueueEntry> SweepQueue::list(const std::vector<std::string>& queues, int finished) {
  std::vector<QueueEntry> out;
  const auto names = name_array(queues);
  const auto active = db_->exec(
      ("SELECT " + kColumns + kCountsColumns + " FROM xpscale.queue q" + kCountsJoin +
       " WHERE q.status IN ('queued', 'running') AND ($1::text[] IS NULL OR q.queue = "
       "ANY($1::text[])) ORDER BY q.status = 'running' DESC, q.priority DESC, q.id")
          .c_str(),
      {names});
  for (int i = 0; i < active.rows(); ++i) out.push_back(read_entry(active, i, true));
  const auto done = db_->exec(
      ("SELECT " + kColumns + kCountsColumns + " FROM xpscale.queue q" + kCountsJoin +
       " WHERE q.status NOT IN ('queued', 'running') AND ($1::text[] IS NULL OR q.queue = "
       "ANY($1::text[])) ORDER BY q.finished_at DESC NULLS LAST, q.id DESC LIMIT $2")
          .c_str(),
      {names, finished});
  for (int i = 0; i < done.rows(); ++i) out.push_back(read_entry(done, i, true));
  return out;
}

std::optional<QueueEntry> SweepQueue::find(const std::string& key) {
  const auto r = db_->exec(
      ("SELECT " + kColumns + kCountsColumns + " FROM xpscale.queue q" + kCountsJoin +
       " WHERE " + (is_id(key) ? "q.id = $1::bigint" : "q.sweep = $1") +
       " ORDER BY q.status IN ('queued', 'running') DESC, q.id DESC LIMIT 1")
          .c_str(),
      {key});
  if (r.rows() == 0) return std::nullopt;
  return read_entry(r, 0, true);
}

void SweepQueue::set_paused(const std::string& queue, bool paused, const std::string& by) {
  db_->exec(("INSERT INTO xpscale.queues(name, paused, changed_by, changed_at) VALUES ($1, $2, "
             "$3, " + kNow + ") ON CONFLICT (name) DO UPDATE SET paused = $2, changed_by = $3, "
             "changed_at = " + kNow)
                .c_str(),
            {queue, paused, by});
}

std::vector<std::pair<std::string, bool>> SweepQueue::queues() {
  const auto r = db_->exec(
      "SELECT name, bool_or(paused) FROM (SELECT queue AS name, false AS paused FROM "
      "xpscale.queue UNION ALL SELECT name, paused FROM xpscale.queues) x GROUP BY name "
      "ORDER BY name");
  std::vector<std::pair<std::string, bool>> out;
  for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.text(i, 0), r.boolean(i, 1));
  return out;
}

QueueEntry SweepQueue::cancel(const std::string& key, const std::string& by) {
  db_->begin();
  try {
    const auto r = db_->exec(
        ("SELECT q.id, q.status, q.heartbeat_at < " + kNow +
         " - q.lease_s FROM xpscale.queue q WHERE " +
         (is_id(key) ? "q.id = $1::bigint" : "q.sweep = $1") +
         " AND q.status IN ('queued', 'running') FOR UPDATE")
            .c_str(),
        {key});
    if (r.rows() == 0) {
      db_->rollback();
      const auto e = find(key);
      throw StoreError(
          e ? "queue: entry " + std::to_string(e->id) + " (sweep '" + e->sweep + "') is " +
                  e->status + " already; nothing to cancel"
            : "queue: no entry " + std::string(is_id(key) ? "" : "of sweep ") + "'" + key +
                  "' (see xpscale queue list)",
          false, ErrorCategory::kUser);
    }
    const std::int64_t id = r.i64(0, 0);
    const bool now = r.text(0, 1) == "queued" || r.boolean(0, 2);
    if (now)
      db_->exec(("UPDATE xpscale.queue SET status = 'cancelled', finished_at = " + kNow +
                 ", message = $2 WHERE id = $1")
                    .c_str(),
                {id, "cancelled by " + by});
    else
      db_->exec("UPDATE xpscale.queue SET cancel_requested = true, message = $2 WHERE id = $1",
                {id, "cancel requested by " + by});
    db_->commit();
    return *find(std::to_string(id));
  } catch (...) {
    db_->rollback();
    throw;
  }
}

}  // namespace xpscale
