#pragma once
// A Store in front of another that waits out transient errors (store.h,
// StoreError::transient(): busy or locked by another process, disk full,
// an I/O error) for a bounded time, so that a full disk or a user's
// `sqlite3` shell holding a lock does not end a sweep.
//
// How: every write of the open transaction is remembered (its arguments,
// by value). When a write or the commit fails with a transient error, the
// transaction is rolled back (the engine may have done so already) and,
// after a pause that grows to 2 s, begun again, its writes replayed in
// order, until it succeeds — or until `window` has passed since the first
// failure; then StoreUnavailable is thrown and what was committed before
// stays intact. The caller sees either success, with exactly its writes
// applied once, or StoreUnavailable. Reads are retried the same way.
//
// The wait blocks the caller (the coordinator): running trials go on, and
// no group gets new work until the store answers. `notify` is told once
// when waiting starts and once when it ends.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "xpscale/store/store.h"

namespace xpscale {

class RetryingStore final : public Store {
 public:
  using Notify = std::function<void(const std::string& message)>;
  RetryingStore(std::unique_ptr<Store> inner, std::chrono::milliseconds window, Notify notify = {});
  ~RetryingStore() override;

  std::string location() const override { return inner_->location(); }
  void begin() override;
  void commit() override;
  void rollback() noexcept override;
  bool in_transaction() const override { return inner_->in_transaction(); }

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
  // The inner store's, each call waited out like the others: lock_sweep()
  // is a write of the open transaction (replayed with it); the others run
  // outside a transaction, on their own.
  SharedSweep* shared() override;

 private:
  class Shared;
  friend class Shared;
  using Op = std::function<void(Store&)>;
  // Runs a write: remembered when a transaction is open, retried on its own
  // otherwise.
  void write(Op op);
  // Runs f against the inner store; on a transient error, recovers (replays
  // the open transaction) and tries f again, until the window passes.
  template <class F>
  auto attempt(F&& f) const -> decltype(f());
  // Rolls back and replays the open transaction's writes (and commits them
  // when `then_commit`), pausing between tries, until it works or the window
  // that began at the first failure passes (then throws StoreUnavailable).
  void recover(const StoreError& first, bool then_commit) const;
  void waited_out() const;

  std::unique_ptr<Store> inner_;
  std::chrono::milliseconds window_;
  Notify notify_;
  std::vector<Op> ops_;  // the open transaction's writes, in order
  bool in_tx_ = false;   // ours, mirrored: the inner one may have rolled back
  mutable std::optional<std::chrono::steady_clock::time_point> failing_since_;
  std::unique_ptr<Shared> shared_;  // when the inner store is shared
};

}  // namespace xpscale
