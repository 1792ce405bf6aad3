#include "xpscale/store/retrying_store.h"

#include <algorithm>
#include <cstdio>
#include <thread>
#include <type_traits>

namespace xpscale {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string seconds_text(Clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", std::chrono::duration<double>(d).count());
  return buf;
}

}  // namespace


template <class F>
auto RetryingStore::attempt(F&& f) const -> decltype(f()) {
  for (;;) {
    try {
      if constexpr (std::is_void_v<decltype(f())>) {
        f();
        waited_out();
        return;
      } else {
        auto result = f();
        waited_out();
        return result;
      }
    } catch (const StoreUnavailable&) {
      throw;
    } catch (const StoreError& e) {
      if (!e.transient()) throw;
      recover(e, false);  // then f again, on the replayed transaction
    }
  }
}

void RetryingStore::recover(const StoreError& first, bool then_commit) const {
  if (!failing_since_) {
    failing_since_ = Clock::now();
    if (notify_)
      notify_(std::string(first.what()) + "; retrying for up to " + seconds_text(window_) +
              " (--store-retry): running trials go on, none starts until the store answers");
  }
  std::string last = first.what();
  auto pause = milliseconds(50);
  for (;;) {
    inner_->rollback();
    const auto waited = Clock::now() - *failing_since_;
    if (waited >= window_) {
      failing_since_.reset();
      throw StoreUnavailable(last + "; still failing after " + seconds_text(waited) +
                             " (--store-retry); what was committed is intact: run again to "
                             "resume once the store is writable");
    }
    std::this_thread::sleep_for(std::min<Clock::duration>(pause, window_ - waited));
    pause = std::min(pause * 2, milliseconds(2000));
    if (!in_tx_ && !then_commit) return;  // no transaction: the caller tries its call again
    try {
      inner_->begin();
      for (const auto& op : ops_) op(*inner_);
      if (then_commit) inner_->commit();
      return;
    } catch (const StoreError& e) {
      if (!e.transient()) throw;
      last = e.what();
    }
  }
}

void RetryingStore::waited_out() const {
  if (!failing_since_) return;
  const auto waited = Clock::now() - *failing_since_;
  failing_since_.reset();
  if (notify_) notify_("the store answers again after " + seconds_text(waited));
}

void RetryingStore::write(Op op) {
  if (!in_tx_) {
    // In a transaction of its own, so that a retry never applies half of a
    // write made of several statements twice.
    attempt([&] {
      inner_->begin();
      try {
        op(*inner_);
        inner_->commit();
      } catch (...) {
        inner_->rollback();
        throw;
      }
    });
    return;
  }
  ops_.push_back(std::move(op));
  try {
    ops_.back()(*inner_);
  } catch (const StoreUnavailable&) {
    throw;
  } catch (const StoreError& e) {
    if (!e.transient()) throw;
    recover(e, false);  // replays every write, this one included
  }
  waited_out();
}

class RetryingStore::Shared final : public SharedSweep {
 public:
  Shared(RetryingStore& outer, SharedSweep& inner) : outer_(outer), inner_(inner) {}
  void set_lease(double seconds) override { inner_.set_lease(seconds); }
  double lease() const override { return inner_.lease(); }
  void lock_sweep() override {
    SharedSweep* inner = &inner_;
    outer_.write([inner](Store&) { inner->lock_sweep(); });
  }
  std::optional<Claim> claim_trial(std::int64_t run, int group, const std::string& ranks,
                                   const std::string& hosts, double now) override {
    return outer_.attempt([&] { return inner_.claim_trial(run, group, ranks, hosts, now); });
  }
  SweepCounts heartbeat(std::int64_t run) override {
    return outer_.attempt([&] { return inner_.heartbeat(run); });
  }
  int reap(std::int64_t run, double now) override {
    return outer_.attempt([&] { return inner_.reap(run, now); });
  }
  int release_untracked(std::int64_t run, const std::vector<std::pair<std::uint64_t, int>>& held,
                        double now) override {
    return outer_.attempt([&] { return inner_.release_untracked(run, held, now); });
  }
  bool owns_attempt(std::uint64_t trial, int attempt, std::int64_t run) override {
    return outer_.attempt([&] { return inner_.owns_attempt(trial, attempt, run); });
  }
  Finished finish_owned(std::int64_t run, const AttemptEnd& end,
                        const std::optional<ClaimFor>& next) override {
    return outer_.attempt([&] { return inner_.finish_owned(run, end, next); });
  }
  std::uint64_t next_trial_id() override {
    return outer_.attempt([&] { return inner_.next_trial_id(); });
  }
  std::vector<std::string> live_runs() override {
    return outer_.attempt([&] { return inner_.live_runs(); });
  }

 private:
  RetryingStore& outer_;
  SharedSweep& inner_;
};

RetryingStore::RetryingStore(std::unique_ptr<Store> inner, milliseconds window, Notify notify)
    : inner_(std::move(inner)), window_(window), notify_(std::move(notify)) {
  if (SharedSweep* s = inner_->shared()) shared_ = std::make_unique<Shared>(*this, *s);
}

RetryingStore::~RetryingStore() = default;

SharedSweep* RetryingStore::shared() { return shared_.get(); }

void RetryingStore::begin() {
  if (in_tx_) return;
  attempt([&] { inner_->begin(); });
  in_tx_ = true;
  ops_.clear();
}

void RetryingStore::commit() {
  if (!in_tx_) return;
  try {
    inner_->commit();
  } catch (const StoreUnavailable&) {
    throw;
  } catch (const StoreError& e) {
    if (!e.transient()) throw;
    recover(e, true);
  }
  waited_out();
  in_tx_ = false;
  ops_.clear();
}

void RetryingStore::rollback() noexcept {
  inner_->rollback();
  in_tx_ = false;
  ops_.clear();
}

std::optional<SweepRow> RetryingStore::sweep() const {
  return attempt([&] { return inner_->sweep(); });
}
void RetryingStore::write_sweep(const SweepRow& row) {
  write([row](Store& s) { s.write_sweep(row); });
}
std::int64_t RetryingStore::begin_run(int world_size, int groups, int ranks_per_trial,
                                      const std::string& hosts, bool resumed, double now) {
  // The replay after a rollback returns the same number: the result of the
  // last run of the op is the one that holds.
  auto run = std::make_shared<std::int64_t>(0);
  write([=](Store& s) {
    *run = s.begin_run(world_size, groups, ranks_per_trial, hosts, resumed, now);
  });
  return *run;
}
void RetryingStore::end_run(std::int64_t run, const std::string& status,
                            const nlohmann::json& summary, double now) {
  write([=](Store& s) { s.end_run(run, status, summary, now); });
}
std::vector<TrialRow> RetryingStore::trials() const {
  return attempt([&] { return inner_->trials(); });
}
std::optional<TrialRow> RetryingStore::trial(std::uint64_t id) const {
  return attempt([&] { return inner_->trial(id); });
}
std::vector<AttemptRow> RetryingStore::attempts(std::optional<std::uint64_t> trial) const {
  return attempt([&] { return inner_->attempts(trial); });
}
void RetryingStore::put_queued_trial(std::uint64_t id, const nlohmann::ordered_json& params) {
  write([=](Store& s) { s.put_queued_trial(id, params); });
}
void RetryingStore::set_trial_params(std::uint64_t id, const nlohmann::ordered_json& params) {
  write([=](Store& s) { s.set_trial_params(id, params); });
}
void RetryingStore::put_state(const std::string& name, const nlohmann::json& state) {
  write([=](Store& s) { s.put_state(name, state); });
}
std::optional<nlohmann::json> RetryingStore::state(const std::string& name) const {
  return attempt([&] { return inner_->state(name); });
}
void RetryingStore::start_attempt(std::uint64_t trial, int attempt_no, std::int64_t run, int group,
                                  const std::string& ranks, const std::string& hosts, double now) {
  write([=](Store& s) { s.start_attempt(trial, attempt_no, run, group, ranks, hosts, now); });
}
void RetryingStore::finish_attempt(std::uint64_t trial, int attempt_no, TrialStatus status,
                                   const std::string& reason, const std::string& stderr_tail,
                                   double now, bool final) {
  write([=](Store& s) {
    s.finish_attempt(trial, attempt_no, status, reason, stderr_tail, now, final);
  });
}
int RetryingStore::mark_interrupted(double now) {
  auto n = std::make_shared<int>(0);
  write([=](Store& s) { *n = s.mark_interrupted(now); });
  return *n;
}
void RetryingStore::interrupt_attempt(std::uint64_t trial, int attempt_no,
                                      const std::string& reason, double now, bool lost) {
  write([=](Store& s) { s.interrupt_attempt(trial, attempt_no, reason, now, lost); });
}
void RetryingStore::add_metrics(std::uint64_t trial, int attempt_no, std::int64_t step, double time,
                                std::optional<double> value, const nlohmann::json& values,
                                Goal goal) {
  write([=](Store& s) { s.add_metrics(trial, attempt_no, step, time, value, values, goal); });
}
std::vector<MetricRow> RetryingStore::metrics(std::optional<std::uint64_t> trial,
                                              bool with_values) const {
  return attempt([&] { return inner_->metrics(trial, with_values); });
}

}  // namespace xpscale
