// Schedulers on hand-made learning curves whose right answers are worked
// out in the comments. Scores: lower is better (scheduler.h).
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "xpscale/config/sweep_config.h"
#include "xpscale/schedule/scheduler.h"
#include "xpscale/search/rng.h"
#include "xpscale/store/sqlite_store.h"

namespace xpscale {
namespace {

struct R {
  std::uint64_t trial;
  double resource, score;
};

bool stops(Scheduler& s, const R& r) { return s.on_report(r.trial, r.resource, r.score).stop; }

TEST(Asha, ContinuesOnlyTheTopThirdOfEachRungSoFar) {
  auto asha = make_asha_scheduler({1, 9, 3});  // rungs at 1 and 3; 9 is the end
  // Rung 0 (resource 1); keep = max(1, floor(n / 3)) of the n recorded.
  EXPECT_FALSE(stops(*asha, {0, 1, 0.5}));  // n=1 keep 1: rank 1
  EXPECT_TRUE(stops(*asha, {1, 1, 0.9}));   // n=2 keep 1: rank 2
  EXPECT_FALSE(stops(*asha, {2, 1, 0.3}));  // n=3 keep 1: rank 1
  EXPECT_TRUE(stops(*asha, {3, 1, 0.4}));   // n=4 keep 1: rank 2
  EXPECT_FALSE(stops(*asha, {4, 1, 0.1}));  // n=5 keep 1: rank 1
  EXPECT_TRUE(stops(*asha, {5, 1, 0.35}));  // n=6 keep 2: rank 3
  EXPECT_FALSE(stops(*asha, {6, 1, 0.2}));  // n=7 keep 2: rank 2
  // Between rungs each is ranked again at rung 0 (n=7 keep 2), by its
  // score there: trial 4 (0.1) and 6 (0.2) go on, trial 0 (0.5) no longer.
  EXPECT_FALSE(stops(*asha, {4, 2, 5.0}));
  EXPECT_FALSE(stops(*asha, {6, 2, 5.0}));
  EXPECT_TRUE(stops(*asha, {0, 2, 0.0}));
  // Rung 1 (resource 3) starts empty: the first one there never waits.
  EXPECT_FALSE(stops(*asha, {4, 3, 0.45}));
  EXPECT_TRUE(stops(*asha, {6, 3, 0.5}));    // n=2 keep 1: rank 2
  EXPECT_FALSE(stops(*asha, {2, 3, 0.25}));  // n=3 keep 1: rank 1
  // max_resource ends the trial as complete, not as an early stop.
  const auto end = asha->on_report(2, 9, 0.2);
  EXPECT_TRUE(end.stop);
  EXPECT_TRUE(end.complete);
}

// The case bench/search measured: the first trial at a rung goes on (it
// has no rivals yet), a better one arrives, and the first would then no
// longer be promoted. It stops at its next report instead of training on
// to the next rung, and beyond, as the first one there. Before, nothing was
// decided between rungs and it ran to max_resource.
TEST(Asha, AnEarlyArrivalStopsOnceTheRungShowsItOutOfTheTop) {
  auto asha = make_asha_scheduler({1, 9, 3});
  EXPECT_FALSE(stops(*asha, {0, 1, 0.5}));  // first at rung 0: goes on
  EXPECT_FALSE(stops(*asha, {1, 1, 0.3}));  // n=2 keep 1: rank 1
  const auto d = asha->on_report(0, 2, 0.1);  // its rung-0 score counts, not this one
  EXPECT_TRUE(d.stop);
  EXPECT_FALSE(d.complete);
  EXPECT_EQ(d.reason, "asha: rung 0 (resource 1): now rank 2 of 2, top 1 continue");
  EXPECT_TRUE(stops(*asha, {0, 3, 0.0}));  // stays stopped; rung 1 never sees it
  EXPECT_FALSE(stops(*asha, {1, 2, 0.2}));
  EXPECT_FALSE(stops(*asha, {1, 3, 0.2}));  // first at rung 1
  EXPECT_EQ(asha->state()["brackets"][0]["scores"][1].size(), 1u);
}

TEST(Asha, BetweenRungsATrialIsRankedAtItsHighestRungOnly) {
  auto asha = make_asha_scheduler({1, 9, 3});
  EXPECT_FALSE(stops(*asha, {0, 1, 0.5}));
  EXPECT_FALSE(stops(*asha, {0, 3, 0.5}));  // first at rung 1
  EXPECT_FALSE(stops(*asha, {1, 1, 0.1}));  // rung 0 now ranks trial 0 second
  EXPECT_FALSE(stops(*asha, {0, 4, 0.5}));  // ranked at rung 1, where it leads
  EXPECT_FALSE(stops(*asha, {1, 3, 0.4}));  // rung 1: n=2, rank 1
  EXPECT_TRUE(stops(*asha, {0, 5, 0.5}));   // rung 1: now rank 2 of 2
}

TEST(Asha, AStateWithoutRungScoresRestoresAndRanksOnlyOnArrival) {
  auto a = make_asha_scheduler({1, 9, 3});
  EXPECT_FALSE(stops(*a, {0, 1, 0.5}));
  EXPECT_FALSE(stops(*a, {1, 1, 0.3}));
  auto old = a->state();
  old["brackets"][0].erase("rung_score");  // as written before rung_score
  auto b = make_asha_scheduler({1, 9, 3});
  b->restore(old);
  EXPECT_FALSE(stops(*b, {0, 2, 0.5}));  // no score kept: not ranked again
  EXPECT_TRUE(stops(*b, {2, 1, 0.9}));   // arrivals are ranked as before
  EXPECT_TRUE(stops(*a, {0, 2, 0.5}));
}

TEST(Asha, AReportPastSeveralRungsRecordsEachAndDecidesOnTheLast) {
  auto asha = make_asha_scheduler({1, 100, 3});  // rungs 1, 3, 9, 27, 81
  EXPECT_FALSE(stops(*asha, {0, 1, 1.0}));
  EXPECT_FALSE(stops(*asha, {1, 10, 0.5}));   // records rungs 1, 3, 9; first at 3 and 9
  const auto d = asha->on_report(2, 3, 2.0);  // rung 3: n=2, rank 2
  EXPECT_TRUE(d.stop);
  EXPECT_NE(d.reason.find("asha: rung 1 (resource 3): rank 2 of 2"), std::string::npos) << d.reason;
}

TEST(Asha, AStoppedTrialThatReportsAgainStaysStopped) {
  auto asha = make_asha_scheduler({1, 9, 3});
  EXPECT_FALSE(stops(*asha, {0, 1, 0.1}));
  EXPECT_TRUE(stops(*asha, {1, 1, 0.9}));
  // Its attempt restarted after a crash and reports a better value.
  EXPECT_TRUE(stops(*asha, {1, 1, 0.0}));
}

TEST(Asha, AFailedTrialLeavesTheRungsAsTheyWere) {
  auto a = make_asha_scheduler({1, 9, 3});
  auto b = make_asha_scheduler({1, 9, 3});
  for (auto* s : {a.get(), b.get()}) {
    EXPECT_FALSE(stops(*s, {0, 1, 0.5}));
    EXPECT_TRUE(stops(*s, {1, 1, 0.9}));
  }
  a->on_end(7, TrialEnd::kFailed);  // never reported: no score to count
  EXPECT_EQ(a->state(), b->state());
}

// promotion: pause, the paper's ASHA (Li et al. 2020, Algorithm 2).
std::unique_ptr<Scheduler> pausing_asha() { return make_asha_scheduler({1, 9, 3, true}); }

bool pauses_now(Scheduler& s, const R& r) {
  const auto d = s.on_report(r.trial, r.resource, r.score);
  EXPECT_EQ(d.pause, d.stop) << "a pausing ASHA stops below max_resource only to pause";
  EXPECT_FALSE(d.complete);
  return d.pause;
}

TEST(AshaPause, ATrialPausesAtARungUnlessPromotableAndTheBestPausedIsPromotedLater) {
  auto asha = pausing_asha();
  EXPECT_TRUE(asha->pauses());
  // Rung 0: keep = floor(n / 3), no max(1, ...): the first arrivals wait.
  const auto first = asha->on_report(0, 1, 0.5);
  EXPECT_TRUE(first.stop && first.pause);
  EXPECT_EQ(first.reason, "asha: paused at rung 0 (resource 1): rank 1 of 1, top 0 promoted");
  EXPECT_EQ(asha->next_promotion(false), std::nullopt);
  EXPECT_TRUE(pauses_now(*asha, {1, 1, 0.3}));  // n=2 keep 0
  EXPECT_TRUE(pauses_now(*asha, {2, 1, 0.9}));  // n=3 keep 1: rank 3
  // Trial 1 (0.3) is now in the top 1 of 3: promoted once, trial 0 not.
  EXPECT_EQ(asha->next_promotion(false), 1u);
  EXPECT_EQ(asha->next_promotion(false), std::nullopt);
  EXPECT_FALSE(pauses_now(*asha, {1, 2, 0.2}));  // promoted: goes on to rung 1
  EXPECT_TRUE(pauses_now(*asha, {1, 3, 0.25}));  // rung 1: n=1 keep 0
  // Promotable on arrival (n=4 keep 1, rank 1): goes on without a pause.
  EXPECT_FALSE(pauses_now(*asha, {3, 1, 0.1}));
  EXPECT_EQ(asha->next_promotion(false), std::nullopt);  // trial 0: rank 3 of 4
  // Drained (nothing runs, no config left): the top max(1, floor(n / 3))
  // of each rung, the highest rung first.
  EXPECT_EQ(asha->next_promotion(true), 1u);
  EXPECT_EQ(asha->next_promotion(true), std::nullopt);  // rung 0's top 1 went on
  const auto end = asha->on_report(1, 9, 0.2);
  EXPECT_TRUE(end.stop && end.complete && !end.pause);
}

TEST(AshaPause, APausedTrialThatReportsAgainIsDecidedAtItsRungAgain) {
  auto asha = pausing_asha();
  EXPECT_TRUE(pauses_now(*asha, {0, 1, 0.1}));
  // Its attempt ran on (a retry after a crash, from its checkpoint): it is
  // still not promotable (n=1 keep 0), so it pauses again.
  EXPECT_TRUE(pauses_now(*asha, {0, 2, 0.0}));
  EXPECT_TRUE(pauses_now(*asha, {1, 1, 0.5}));
  EXPECT_TRUE(pauses_now(*asha, {2, 1, 0.6}));  // n=3 keep 1: trial 0 promotable
  EXPECT_FALSE(pauses_now(*asha, {0, 2, 0.0}));  // promoted by its own report
  EXPECT_EQ(asha->next_promotion(true), std::nullopt);  // and not offered again
}

TEST(AshaPause, APromotedTrialWithoutACheckpointRestartsAndGoesOnToItsNextRung) {
  auto asha = pausing_asha();
  for (std::uint64_t t = 0; t < 3; ++t)
    EXPECT_TRUE(pauses_now(*asha, {t, 1, 0.1 * static_cast<double>(t + 1)}));
  ASSERT_EQ(asha->next_promotion(false), 0u);
  // The script keeps no checkpoint: the resumed attempt starts at 1 again.
  EXPECT_FALSE(pauses_now(*asha, {0, 1, 0.7}));  // rung 0 keeps its first score
  EXPECT_FALSE(pauses_now(*asha, {0, 2, 0.7}));
  EXPECT_TRUE(pauses_now(*asha, {0, 3, 0.7}));  // rung 1: n=1 keep 0
  EXPECT_EQ(asha->state()["brackets"][0]["scores"][0].size(), 3u);
}

TEST(AshaPause, PausedTrialsAndOffersSurviveARestore) {
  auto a = pausing_asha();
  // Each arrival is worse than all before it: every one pauses.
  for (std::uint64_t t = 0; t < 6; ++t)
    EXPECT_TRUE(pauses_now(*a, {t, 1, 0.5 + 0.1 * static_cast<double>(t)}));
  ASSERT_EQ(a->next_promotion(false), 0u);  // n=6 keep 2: trials 0 and 1
  auto b = pausing_asha();
  b->restore(a->state());
  EXPECT_EQ(b->state(), a->state());
  EXPECT_EQ(b->next_promotion(false), 1u);
  EXPECT_EQ(a->next_promotion(false), 1u);
  EXPECT_EQ(b->next_promotion(false), std::nullopt);
}

TEST(AshaPause, AStopBasedStateRestoresIntoAPausingSchedulerWithNothingPaused) {
  auto stop_based = make_asha_scheduler({1, 9, 3});
  EXPECT_FALSE(stops(*stop_based, {0, 1, 0.5}));
  EXPECT_TRUE(stops(*stop_based, {1, 1, 0.9}));
  EXPECT_FALSE(stop_based->state().contains("paused"));  // its state is as before
  auto pausing = pausing_asha();
  pausing->restore(stop_based->state());
  EXPECT_EQ(pausing->next_promotion(true), std::nullopt);
  EXPECT_TRUE(stops(*pausing, {1, 2, 0.0}));  // stopped stays stopped
  EXPECT_FALSE(stop_based->pauses());
  EXPECT_EQ(stop_based->next_promotion(true), std::nullopt);
}

TEST(Hyperband, TrialsSplitOverBracketsAndTheLaterBracketHasNoFirstRung) {
  HyperbandOptions o;
  o.asha = {1, 27, 3};  // bracket 0: rungs 1, 3, 9; bracket 1: rungs 3, 9
  o.brackets = 2;
  o.seed = 5;
  auto hb = make_hyperband_scheduler(o);
  // Trials report ever worse scores at resource 1: in bracket 0 all but the
  // first stop there; bracket 1 has no rung at 1, so its trials continue.
  int continued = 0, stopped = 0;
  for (std::uint64_t t = 0; t < 200; ++t) {
    const auto d = hb->on_report(t, 1, static_cast<double>(t));
    if (d.stop) {
      ++stopped;
      EXPECT_NE(d.reason.find("hyperband bracket 0"), std::string::npos) << d.reason;
    } else {
      ++continued;
    }
  }
  // Bracket weights: eta^1 / 2 = 1.5 and eta^0 / 1 = 1, i.e. 60% / 40%.
  EXPECT_GT(continued, 60);
  EXPECT_LT(continued, 100);
  EXPECT_EQ(continued + stopped, 200);
}

TEST(WandbHyperband, BandsFollowWandb) {
  EarlyTerminateSpec e;
  e.max_iter = 5, e.s = 2, e.eta = 2;
  EXPECT_EQ(wandb_hyperband_bands(e), (std::vector<double>{1, 2}));
  e.max_iter = 81, e.s = 3, e.eta = 3;
  EXPECT_EQ(wandb_hyperband_bands(e), (std::vector<double>{3, 9, 27}));
  EarlyTerminateSpec m;
  m.min_iter = 3, m.eta = 3;
  const auto bands = wandb_hyperband_bands(m);
  EXPECT_EQ((std::vector<double>(bands.begin(), bands.begin() + 3)),
            (std::vector<double>{3, 9, 27}));
}

TEST(WandbHyperband, StopsRunsWorseThanTheBandThreshold) {
  auto hb = make_wandb_hyperband_scheduler({{1, 2}, 2, false});
  // Band 1, threshold sorted[floor(n / 2)].
  EXPECT_FALSE(stops(*hb, {0, 1, 10}));  // [10] -> 10
  EXPECT_FALSE(stops(*hb, {1, 1, 12}));  // [10 12] -> 12
  EXPECT_FALSE(stops(*hb, {2, 1, 11}));  // [10 11 12] -> 11
  EXPECT_TRUE(stops(*hb, {3, 1, 13}));   // [10 11 12 13] -> 12 < 13
}

TEST(WandbHyperband, StrictComparesTheValueAtTheBandNotTheBestSoFar) {
  for (bool strict : {false, true}) {
    auto hb = make_wandb_hyperband_scheduler({{1, 2}, 2, strict});
    for (std::uint64_t t : {0, 1}) {
      EXPECT_FALSE(stops(*hb, {t, 1, 1}));
      EXPECT_FALSE(stops(*hb, {t, 2, 1}));
    }
    EXPECT_FALSE(stops(*hb, {2, 1, 0.5}));
    // Band 2 holds [1 1 5], threshold 1: best so far 0.5 passes, 5 does not.
    EXPECT_EQ(stops(*hb, {2, 2, 5}), strict);
  }
}

// Two ended trials: running averages at step 3 are 3 (4,3,2) and 5 (6,5,4).
void two_ended_trials(Scheduler& m) {
  const double curves[2][4] = {{4, 3, 2, 1}, {6, 5, 4, 3}};
  for (std::uint64_t t = 0; t < 2; ++t) {
    for (int s = 0; s < 4; ++s) m.on_report(t, s + 1, curves[t][s]);
    m.on_end(t, TrialEnd::kCompleted);
  }
}

TEST(MedianStopping, StopsATrialWhoseBestIsWorseThanTheMedianOfRunningAverages) {
  auto m = make_median_scheduler({2, 2});
  two_ended_trials(*m);
  EXPECT_FALSE(stops(*m, {3, 1, 10}));  // before the grace period
  EXPECT_TRUE(stops(*m, {3, 3, 4.5}));  // best 4.5 > median(3, 5) = 4
  EXPECT_FALSE(stops(*m, {4, 3, 3.9}));
}

TEST(MedianStopping, FailedTrialsDoNotCount) {
  auto m = make_median_scheduler({2, 2});
  two_ended_trials(*m);
  // An excellent trial that failed: counted, the median would be 3 and
  // trial 4 (3.9) would stop.
  for (int s = 1; s <= 4; ++s) m->on_report(2, s, 0.0);
  m->on_end(2, TrialEnd::kFailed);
  EXPECT_FALSE(stops(*m, {4, 3, 3.9}));
}

TEST(MedianStopping, WaitsForMinSamplesTrialsThatReachedTheStep) {
  auto m = make_median_scheduler({0, 2});
  for (int s = 1; s <= 4; ++s) m->on_report(0, s, 1.0);
  m->on_end(0, TrialEnd::kCompleted);
  m->on_report(1, 1, 1.0);  // stopped at step 1: says nothing about step 3
  m->on_end(1, TrialEnd::kStopped);
  EXPECT_FALSE(stops(*m, {2, 3, 100}));  // one sample at step 3, two needed
  EXPECT_TRUE(stops(*m, {3, 1, 100}));   // two at step 1
}

ParameterSpec lr_spec() {
  ParameterSpec lr;
  lr.name = "lr";
  lr.distribution = Distribution::kLogUniformValues;
  lr.min = 1e-4;
  lr.max = 1;
  return lr;
}

TEST(Pbt, TheBottomMemberCopiesTheTopMemberAndPerturbs) {
  PbtOptions o;
  o.interval = 2;
  o.quantile = 0.25;
  o.resample_probability = 0;
  auto pbt = make_pbt_scheduler(o, {lr_spec()});
  const double lrs[4] = {0.1, 0.01, 0.001, 0.0001};
  const double scores[4] = {0.1, 0.2, 0.3, 0.9};
  for (std::uint64_t t = 0; t < 4; ++t) pbt->on_start(t, Params{{"lr", lrs[t]}});
  for (std::uint64_t t = 0; t < 4; ++t) EXPECT_FALSE(stops(*pbt, {t, 1, scores[t]}));
  // At resource 2 (one interval): 4 members, quantile 1; trial 3 is last.
  for (std::uint64_t t = 0; t < 3; ++t) EXPECT_FALSE(stops(*pbt, {t, 2, scores[t]}));
  const auto d = pbt->on_report(3, 2, 0.9);
  ASSERT_TRUE(d.stop);
  EXPECT_NE(d.reason.find("pbt: exploit trial 0"), std::string::npos) << d.reason;
  const auto restart = pbt->on_end(3, TrialEnd::kStopped);
  ASSERT_TRUE(restart);
  EXPECT_EQ(restart->copy_from, 0u);
  const double lr = restart->params["lr"].get<double>();
  EXPECT_TRUE(std::abs(lr - 0.08) < 1e-9 || std::abs(lr - 0.12) < 1e-9) << lr;
  // Within the interval after the copy it is not considered again.
  EXPECT_FALSE(stops(*pbt, {3, 3, 0.95}));
}

TEST(Pbt, AFailedMemberIsNoDonor) {
  PbtOptions o;
  o.interval = 1;
  o.quantile = 0.5;
  auto pbt = make_pbt_scheduler(o, {lr_spec()});
  for (std::uint64_t t = 0; t < 3; ++t) pbt->on_start(t, Params{{"lr", 0.01}});
  EXPECT_FALSE(stops(*pbt, {0, 1, 0.5}));  // alone: nothing to compare
  EXPECT_FALSE(stops(*pbt, {2, 1, 0.0}));  // the best so far
  pbt->on_end(2, TrialEnd::kFailed);
  // Ranked [0, 1]: trial 1 copies trial 0, not the failed trial 2.
  const auto d = pbt->on_report(1, 1, 9.0);
  ASSERT_TRUE(d.stop);
  EXPECT_NE(d.reason.find("pbt: exploit trial 0"), std::string::npos) << d.reason;
}

// The same reports into an uninterrupted scheduler and into one saved to a
// real store halfway, reopened and restored: the same decisions.
void expect_resume_is_exact(const std::function<std::unique_ptr<Scheduler>()>& make,
                            const std::vector<R>& reports) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("sched-resume-" + std::to_string(getpid()) + "-" +
                    ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto whole = make();
  std::vector<SchedulerDecision> expected;
  int stopped = 0;
  for (const auto& r : reports) {
    expected.push_back(whole->on_report(r.trial, r.resource, r.score));
    stopped += expected.back().stop;
  }
  // The curves must make the scheduler decide both ways, in both halves.
  ASSERT_GT(stopped, 0);
  ASSERT_LT(stopped, static_cast<int>(reports.size()));
  ASSERT_TRUE(std::any_of(expected.begin() + static_cast<std::ptrdiff_t>(reports.size() / 2),
                          expected.end(), [](const auto& d) { return d.stop; }));

  auto first = make();
  const std::size_t half = reports.size() / 2;
  for (std::size_t i = 0; i < half; ++i)
    EXPECT_EQ(first->on_report(reports[i].trial, reports[i].resource, reports[i].score).stop,
              expected[i].stop);
  {
    SqliteStore store(dir / "xpscale.db");
    store.begin();
    store.put_state("scheduler", first->state());
    store.commit();
  }
  SqliteStore reopened(dir / "xpscale.db");
  auto second = make();
  second->restore(*reopened.state("scheduler"));
  for (std::size_t i = half; i < reports.size(); ++i) {
    const auto d = second->on_report(reports[i].trial, reports[i].resource, reports[i].score);
    EXPECT_EQ(d.stop, expected[i].stop) << "report " << i;
    EXPECT_EQ(d.reason, expected[i].reason) << "report " << i;
  }
  EXPECT_EQ(second->state(), whole->state());
  std::filesystem::remove_all(dir);
}

std::vector<R> curves(int trials, int steps) {
  std::vector<R> out;
  for (int s = 1; s <= steps; ++s)
    for (int t = 0; t < trials; ++t)
      out.push_back({static_cast<std::uint64_t>(t), static_cast<double>(s),
                     ((t * 7919) % 13) / (1.0 + s) + 0.01 * t});
  return out;
}

TEST(SchedulerResume, AshaDecidesAfterRestoreAsWithoutInterruption) {
  expect_resume_is_exact([] { return make_asha_scheduler({1, 27, 3}); }, curves(20, 12));
}

TEST(SchedulerResume, PausingAshaDecidesAfterRestoreAsWithoutInterruption) {
  expect_resume_is_exact([] { return make_asha_scheduler({1, 27, 3, true}); }, curves(20, 12));
}

TEST(SchedulerResume, HyperbandDecidesAfterRestoreAsWithoutInterruption) {
  expect_resume_is_exact(
      [] {
        return make_hyperband_scheduler({{1, 27, 3}, 3, 11});
      },
      curves(20, 12));
}

TEST(SchedulerResume, WandbHyperbandDecidesAfterRestoreAsWithoutInterruption) {
  expect_resume_is_exact(
      [] {
        return make_wandb_hyperband_scheduler({{2, 4, 8}, 2, false});
      },
      curves(20, 12));
}

TEST(SchedulerResume, MedianDecidesAfterRestoreAsWithoutInterruption) {
  expect_resume_is_exact(
      [] {
        auto m = make_median_scheduler({1, 2});
        two_ended_trials(*m);
        return m;
      },
      curves(20, 6));
}

TEST(SchedulerResume, PbtDecidesAfterRestoreAsWithoutInterruption) {
  expect_resume_is_exact(
      [] {
        PbtOptions o;
        o.interval = 2;
        o.seed = 3;
        auto p = make_pbt_scheduler(o, {lr_spec()});
        for (std::uint64_t t = 0; t < 20; ++t) p->on_start(t, Params{{"lr", 0.001 * (t + 1)}});
        return p;
      },
      curves(20, 8));
}

TEST(SchedulerResume, AStateOfAnotherSchedulerIsRefused) {
  auto asha = make_asha_scheduler({1, 9, 3});
  auto median = make_median_scheduler({});
  EXPECT_THROW(median->restore(asha->state()), Error);
  EXPECT_THROW(asha->restore(nlohmann::json{{"type", "asha"}}), Error);
}

TEST(MakeScheduler, BuildsTheConfiguredSchedulerAndNeedsAMetric) {
  const auto c = parse_sweep_config(
      "method: random\ntrials: 3\nmetric: {name: loss}\nparameters:\n  a: {min: 0.0, max: 1.0}\n"
      "scheduler: {type: asha, resource: epoch, max_resource: 9}\n",
      "s.yaml");
  auto s = make_scheduler(c);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->state().at("type"), "asha");
  EXPECT_FALSE(s->pauses());  // promotion: stop is the default, as Ray's ASHAScheduler
  const auto pausing = parse_sweep_config(
      "method: random\ntrials: 3\nmetric: {name: loss}\nparameters:\n  a: {min: 0.0, max: 1.0}\n"
      "scheduler: {type: asha, resource: epoch, max_resource: 9, promotion: pause}\n",
      "s.yaml");
  EXPECT_TRUE(make_scheduler(pausing)->pauses());
  EXPECT_THROW(parse_sweep_config("method: random\ntrials: 3\nmetric: {name: loss}\nparameters:\n"
                                  "  a: {min: 0.0, max: 1.0}\nscheduler: {type: asha, resource: "
                                  "epoch, max_resource: 9, promotion: later}\n",
                                  "s.yaml"),
               ConfigError);
  const auto no_metric = parse_sweep_config(
      "method: random\ntrials: 3\nparameters:\n  a: {min: 0.0, max: 1.0}\n"
      "early_terminate: {type: hyperband, min_iter: 3}\n",
      "s.yaml");
  try {
    make_scheduler(no_metric);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'early_terminate' needs a 'metric'"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace xpscale

namespace xpscale {
namespace {

TEST(WandbHyperband, StopsAboutTheShareItShouldOnRandomCurves) {
  // Scores uniform in (0, 1): at band 3 the threshold tends to the 1/3
  // quantile, and a trial's best of 3 draws exceeds it with probability
  // (2/3)^3 ~ 0.30.
  auto hb = make_wandb_hyperband_scheduler({{3, 9}, 3, false});
  int stopped = 0;
  for (std::uint64_t t = 0; t < 1000; ++t)
    for (int s = 1; s <= 3; ++s)
      if (hb->on_report(t, s, random_unit(1, t, static_cast<std::uint64_t>(s))).stop) ++stopped;
  EXPECT_GT(stopped, 200);
  EXPECT_LT(stopped, 400);
}

}  // namespace
}  // namespace xpscale
