#pragma once
// The PostgreSQL engine of the store (store.h): many sweeps in one
// database, each found by its name, for sweeps that outgrow one job and one
// file (docs/store.md).
//
// Where: a libpq URL, `postgresql://user@host:port/db?sslmode=...` (or
// `postgres://`). The password comes from PGPASSWORD or ~/.pgpass, as
// libpq finds it; one written in the URL works but is never shown:
// location() and every message name the store without it. Unless the URL
// says otherwise, connecting gives up after 10 s (connect_timeout) and TCP
// keepalives notice a server that vanished within ~15 s.
//
// What: the tables live in the database's schema `xpscale`, every row
// keyed by its sweep (xpscale.sweeps.id). The schema is versioned
// (xpscale.meta.schema_version) and migrated forward in one transaction,
// under an advisory lock, by the first read-write open of a newer xpscale;
// a store written by a newer xpscale is refused with both versions named.
// A database whose schema `xpscale` is not ours is refused, never changed.
//
// Errors: every failing call throws StoreError naming the store and the
// server's message. Lost connections, serialization failures, deadlocks,
// a server shutting down or out of resources are transient (the run's
// RetryingStore waits them out); the next call reconnects. At open, a
// server that cannot be reached, a refused password and a database that
// is not a store are user errors (exit 2).
//
// src/postgres (pg_connection.h) is the one boundary to libpq.
#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "xpscale/store/store.h"

namespace xpscale {

namespace pg {
class Connection;
}

class PostgresStore final : public Store, public SharedSweep {
 public:
  // Opens sweep `sweep` of the store at `url`, creating the schema (or
  // migrating it) and the sweep's row in kReadWrite mode. In kReadOnly
  // mode a sweep that does not exist yet reads as empty, and writes throw.
  PostgresStore(const std::string& url, const std::string& sweep, Mode mode = Mode::kReadWrite);
  ~PostgresStore() override;

  // "postgresql://user@host:port/db, sweep NAME": no password.
  std::string location() const override;
  const std::string& sweep_name() const { return sweep_name_; }

  // The version of the schema this xpscale writes and reads.
  static int schema_version();
  // The SQL that brings a store from version v to v + 1 (v from 0), for
  // tests that build an old store.
  static std::string migration(int from_version);

  // Text that changes whenever the sweep's trials, attempts or metrics
  // do (the dashboard recomputes its data then); two cheap queries.
  std::string change_marker() const;

  void begin() override;
  void commit() override;
  void rollback() noexcept override;
  bool in_transaction() const override;

  std::optional<SweepRow> sweep() const override;
  void write_sweep(const SweepRow& row) override;
  std::int64_t begin_run(int world_size, int groups, int ranks_per_trial, const std::string& hosts,
                         bool resumed, double now) override;
  void end_run(std::int64_t run, const std::string& status, const nlohmann::json& summary,
               double now) override;
  std::vector<TrialRow> trials() const override;
  std::optional<TrialRow> trial(std::uint64_t id) const override;
  std::vector<AttemptRow> attempts(
      std::optional<std::uint64_t> trial = std::nullopt) const override;
  // In a transaction, written at its next statement (or commit), all the
  // trials queued since in one: an error surfaces there.
  void put_queued_trial(std::uint64_t id, const nlohmann::ordered_json& params) override;
  void set_trial_params(std::uint64_t id, const nlohmann::ordered_json& params) override;
  void put_state(const std::string& name, const nlohmann::json& state) override;
  std::optional<nlohmann::json> state(const std::string& name) const override;
  void start_attempt(std::uint64_t trial, int attempt, std::int64_t run, int group,
                     const std::string& ranks, const std::string& hosts, double now) override;
  void finish_attempt(std::uint64_t trial, int attempt, TrialStatus status,
                      const std::string& reason, const std::string& stderr_tail, double now,
                      bool final) override;
  int mark_interrupted(double now) override;
  void interrupt_attempt(std::uint64_t trial, int attempt, const std::string& reason, double now,
                         bool lost = false) override;
  void add_metrics(std::uint64_t trial, int attempt, std::int64_t step, double time,
                   std::optional<double> value, const nlohmann::json& values, Goal goal) override;
  std::vector<MetricRow> metrics(std::optional<std::uint64_t> trial = std::nullopt,
                                 bool with_values = true) const override;

  // Many jobs on one sweep (shared_sweep.h).
  SharedSweep* shared() override { return mode_ == Mode::kReadWrite ? this : nullptr; }
  void set_lease(double seconds) override { lease_s_ = seconds; }
  double lease() const override { return lease_s_; }
  void lock_sweep() override;
  std::optional<Claim> claim_trial(std::int64_t run, int group, const std::string& ranks,
                                   const std::string& hosts, double now) override;
  SweepCounts heartbeat(std::int64_t run) override;
  int reap(std::int64_t run, double now) override;
  int release_untracked(std::int64_t run, const std::vector<std::pair<std::uint64_t, int>>& held,
                        double now) override;
  bool owns_attempt(std::uint64_t trial, int attempt, std::int64_t run) override;
  Finished finish_owned(std::int64_t run, const AttemptEnd& end,
                        const std::optional<ClaimFor>& next = std::nullopt) override;
  std::uint64_t next_trial_id() override;
  std::vector<std::string> live_runs() override;

 private:
  // The sweep's id; in kReadOnly mode looked up again until it exists.
  std::optional<std::int64_t> sweep_id() const;
  std::int64_t writable_sweep_id();  // throws in kReadOnly mode
  // The connection, once the trials put_queued_trial() holds back are
  // written: every statement but those goes through here, so that reads
  // see them and they commit (or roll back) with their transaction.
  pg::Connection& db() const;
  void flush_queued() const;

  std::string sweep_name_;
  Mode mode_;
  std::unique_ptr<pg::Connection> db_;
  mutable std::optional<std::int64_t> sweep_id_;
  double lease_s_ = 60;
  // The run begun on this connection: its writes are fenced (shared_sweep.h)
  // and its lease lock is taken again after a reconnection.
  std::optional<std::int64_t> run_;
  // Trials queued in the open transaction and not yet written (id, params
  // as text), written as one statement (the first job of a sweep queues
  // every trial of it at once); where each id sits in it.
  mutable std::vector<std::pair<std::uint64_t, std::string>> queued_;
  mutable std::unordered_map<std::uint64_t, std::size_t> queued_at_;
};

// Whether `location` names a PostgreSQL store (postgresql:// or postgres://).
bool is_postgres_url(std::string_view location);

// The URL with any password taken out (`user:pw@` and a `password=`
// parameter), its other parts as written: safe to show and to keep.
std::string url_without_password(std::string_view url);

// The password written in a store URL (`user:PASSWORD@` or `password=`),
// percent-decoded; "" when there is none. Commands that start jobs hand it
// over in PGPASSWORD, never on a command line (which `ps` shows to all).
std::string url_password(std::string_view url);

}  // namespace xpscale
