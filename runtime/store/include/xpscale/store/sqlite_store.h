#pragma once
// The SQLite engine of the store (store.h): one file, out_dir/xpscale.db
// (store_path). The embedded default: nothing to set up.
//
// WAL journal with synchronous=NORMAL: a committed transaction survives the
// process being killed. On a network or cluster filesystem
// (filesystem_kind.h: NFS, Lustre, GPFS, SMB, ...) a rollback journal
// (journal_mode=DELETE) with synchronous=FULL instead: WAL's index is
// shared memory that processes on other hosts do not share, while a
// rollback journal needs only POSIX locks on the file, which `xpscale
// report` and `dashboard` on another host take too. The environment
// variable XPSCALE_SQLITE_JOURNAL=wal|delete overrides the choice (a
// node-local mount taken for a network one, or the other way round).
//
// The schema is versioned (meta.schema_version); a store of another version
// is refused with a StoreError that names both.
// sqlite_store.cpp is the one boundary to the SQLite C API: every call is
// checked there and a failure throws StoreError naming the file and
// SQLite's own message.
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>

#include "xpscale/store/store.h"

namespace xpscale {

class SqliteStore final : public Store {
 public:
  // Opens the store file, creating it and its tables in kReadWrite mode; a
  // WAL store on a network filesystem is switched to a rollback journal.
  // Throws StoreError if the file cannot be opened or is not a store, if
  // that switch fails (another process has the store open), or, read-only,
  // for a WAL store on a network filesystem that a run on another host is
  // writing; UserError for an XPSCALE_SQLITE_JOURNAL other than wal|delete.
  explicit SqliteStore(const std::filesystem::path& path, Mode mode = Mode::kReadWrite);
  ~SqliteStore() override;

  const std::filesystem::path& path() const { return path_; }
  std::string location() const override { return path_.string(); }
  // What a read-write open chose, for the run to say (the library prints
  // nothing): the journal mode SQLite reports ("wal", "delete"; "" when
  // read-only), and the network filesystem the file is on, if any.
  const std::string& journal_mode() const { return journal_mode_; }
  const std::optional<std::string>& filesystem() const { return filesystem_; }

  void begin() override;
  void commit() override;
  void rollback() noexcept override;
  bool in_transaction() const override { return in_tx_; }

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

 private:
  class Db;
  void check_still_there();  // throws StoreError if the file was deleted or replaced
  std::filesystem::path path_;
  std::optional<std::pair<dev_t, ino_t>> identity_;  // the file opened (read-write)
  std::chrono::steady_clock::time_point checked_{};
  std::unique_ptr<Db> db_;
  bool in_tx_ = false;
  std::string journal_mode_;
  std::optional<std::string> filesystem_;
};

}  // namespace xpscale
