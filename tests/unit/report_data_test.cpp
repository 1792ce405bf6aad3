// The report page's data from a store (report/web/DATA.md) and the page's
// escaping: a known store in, the fields the page draws out.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>

#include "xpscale/report/report.h"
#include "xpscale/store/sqlite_store.h"

namespace xpscale::report {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ReportDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("xpscale-report-data-" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    store_ = std::make_unique<SqliteStore>(store_path(dir_), Store::Mode::kReadWrite);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  void sweep(const std::string& config, Goal goal = Goal::kMinimize) {
    SweepRow r;
    r.name = "demo";
    r.config_path = "sweep.yaml";
    r.config_text = config;
    r.config_hash = sha256_hex(config);
    r.metric = "loss";
    r.goal = goal;
    r.planned = 4;
    r.created_at = 100;
    store_->write_sweep(r);
  }
  // One attempt of `trial` on `group` from t0, reporting `values` at steps
  // 0, 1, ... one second apart, ended with `status` (running when nullopt).
  void attempt(std::uint64_t trial, int no, int group, double t0, const std::vector<double>& values,
               std::optional<TrialStatus> status, const std::string& reason = "",
               bool final = true, std::int64_t first_step = 0) {
    store_->start_attempt(trial, no, run_, group, std::to_string(group), "n1", t0);
    for (std::size_t i = 0; i < values.size(); ++i)
      store_->add_metrics(trial, no, first_step + static_cast<std::int64_t>(i),
                          t0 + static_cast<double>(i) + 1, values[i], {{"loss", values[i]}},
                          Goal::kMinimize);
    if (status)
      store_->finish_attempt(trial, no, *status, reason, "", t0 + static_cast<double>(values.size()) + 1,
                             final);
  }
  json data(double now = 1000) {
    ReportOptions o;
    o.out_dir = dir_.string();
    o.now = now;
    return report_data({store_.get()}, o);
  }
  fs::path dir_;
  std::unique_ptr<Store> store_;
  std::int64_t run_ = 0;
};

const char* kConfig =
    "name: demo\nmethod: random\ntrials: 4\nmetric: {name: loss, goal: minimize}\n"
    "parameters:\n  lr: {min: 0.001, max: 0.1}\n  opt:\n    parameters:\n      name: {values: [a, "
    "b]}\nscheduler: {type: asha, resource: epoch, max_resource: 9}\n";

TEST_F(ReportDataTest, AKnownSweepGivesTheFieldsThePageDraws) {
  sweep(kConfig);
  run_ = store_->begin_run(2, 2, 1, "n1", false, 10);
  store_->put_queued_trial(0, {{"lr", 0.01}, {"opt", {{"name", "a"}}}});
  store_->put_queued_trial(1, {{"lr", 0.05}, {"opt", {{"name", "b"}}}});
  store_->put_queued_trial(2, {{"lr", 0.002}, {"opt", {{"name", "a"}}}});
  store_->put_queued_trial(3, {{"lr", 0.02}, {"opt", {{"name", "b"}}}});
  attempt(0, 1, 0, 10, {0.9, 0.5, 0.3, 0.4}, TrialStatus::kCompleted);
  attempt(1, 1, 1, 10, {1.0, 0.95}, TrialStatus::kStopped,
          "asha: rung 1 (resource 3): rank 2 of 2, top 1 continue");
  // Trial 2 fails once (retried), then completes.
  attempt(2, 1, 1, 13, {0.8}, TrialStatus::kFailed, "exit status 1", false);
  attempt(2, 2, 0, 15, {0.7, 0.6}, TrialStatus::kCompleted);
  attempt(3, 1, 1, 16, {0.75}, std::nullopt);  // still running

  const json d = data(20);
  EXPECT_EQ(d["format"], 1);
  EXPECT_EQ(d["sweep"]["name"], "demo");
  EXPECT_EQ(d["sweep"]["metric"], "loss");
  EXPECT_EQ(d["sweep"]["goal"], "minimize");
  EXPECT_EQ(d["sweep"]["method"], "random");
  EXPECT_EQ(d["sweep"]["scheduler"], "asha");
  EXPECT_EQ(d["sweep"]["unbounded"], false);
  EXPECT_EQ(d["params"], json({"lr", "opt.name"}));
  EXPECT_EQ(d["counts"]["completed"], 2);
  EXPECT_EQ(d["counts"]["stopped"], 1);
  EXPECT_EQ(d["counts"]["running"], 1);
  EXPECT_EQ(d["counts"]["total"], 4);
  EXPECT_EQ(d["best_trial"], 0);

  const json& t = d["trials"];
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[0]["params"], json({{"lr", 0.01}, {"opt.name", "a"}}));
  EXPECT_DOUBLE_EQ(t[0]["best"].get<double>(), 0.3);
  EXPECT_DOUBLE_EQ(t[0]["final"].get<double>(), 0.4);
  EXPECT_EQ(t[0]["steps"], 4);
  EXPECT_EQ(t[0]["stop"], nullptr);
  EXPECT_EQ(t[1]["stop"], json({{"by", "asha"}, {"rung", 1}, {"step", 1}}));
  EXPECT_EQ(t[2]["attempts"], 2);
  EXPECT_EQ(t[2]["retries"], 1);
  EXPECT_DOUBLE_EQ(t[2]["wall_s"].get<double>(), 2 + 3);
  EXPECT_EQ(t[3]["status"], "running");
  EXPECT_DOUBLE_EQ(t[3]["wall_s"].get<double>(), 20 - 16);  // running: until "now"

  EXPECT_EQ(d["curves"]["0"], json({{0, 0.9}, {1, 0.5}, {2, 0.3}, {3, 0.4}}));
  // Trial 2's attempts both reported step 0: one point per step, ascending,
  // the retry's value winning.
  EXPECT_EQ(d["curves"]["2"], json({{0, 0.7}, {1, 0.6}}));
  // History: final trials with a value, in completion order.
  ASSERT_EQ(d["history"].size(), 3u);
  EXPECT_EQ(d["history"][0][0], 1);  // trial 1 ended at 13
  EXPECT_EQ(d["history"][1][0], 0);  // trial 0 at 15

  const json& tl = d["timeline"];
  EXPECT_EQ(tl["lanes"], json({"group 0", "group 1"}));
  EXPECT_EQ(tl["bars"].size(), 5u);
  EXPECT_DOUBLE_EQ(tl["start"].get<double>(), 10);
  EXPECT_DOUBLE_EQ(tl["end"].get<double>(), 20);
  // group 0: 10-15, 15-18 = 8 s; group 1: 10-13, 13-15, 16-20 = 9 s; of 2 × 10 s.
  EXPECT_NEAR(tl["busy_fraction"].get<double>(), 17.0 / 20.0, 1e-9);
}

TEST_F(ReportDataTest, PbtExploitsAreMarkedAndAreNotRetries) {
  sweep(kConfig);
  run_ = store_->begin_run(1, 1, 1, "n1", false, 10);
  store_->put_queued_trial(0, {{"lr", 0.01}});
  store_->put_queued_trial(5, {{"lr", 0.05}});
  attempt(5, 1, 0, 10, {0.5, 0.4, 0.3}, TrialStatus::kCompleted);
  attempt(0, 1, 0, 14, {0.9, 0.8}, TrialStatus::kStopped,
          "pbt: exploit trial 5 at resource 2 (score 0.8 vs 0.3)", false);
  attempt(0, 2, 0, 17, {0.35, 0.3}, TrialStatus::kCompleted, "", true, 2);
  const json d = data();
  const json& t = d["trials"][0];
  EXPECT_EQ(t["id"], 0);
  EXPECT_EQ(t["retries"], 0);
  EXPECT_EQ(t["exploits"], json::parse(R"([{"donor":5,"step":2.0}])"));
}

TEST_F(ReportDataTest, LongCurvesAreDownsampledKeepingFirstLastAndBest) {
  sweep(kConfig);
  run_ = store_->begin_run(1, 1, 1, "n1", false, 10);
  store_->put_queued_trial(0, {{"lr", 0.01}});
  std::vector<double> v;
  for (int i = 0; i < 1000; ++i) v.push_back(1.0 + std::sin(i * 0.1));
  v[777] = -5;  // the best, a dip one slice must keep
  attempt(0, 1, 0, 10, v, TrialStatus::kCompleted);
  ReportOptions o;
  o.now = 5000;
  o.points_per_curve = 50;
  const json d = report_data({store_.get()}, o);
  const json& c = d["curves"]["0"];
  EXPECT_LE(c.size(), 50u);
  EXPECT_GE(c.size(), 40u);
  EXPECT_EQ(c.front(), json({0, v[0]}));
  EXPECT_EQ(c.back(), json({999, v[999]}));
  bool has_best = false;
  for (const auto& p : c) has_best |= p[0] == 777 && p[1] == -5.0;
  EXPECT_TRUE(has_best);
  for (std::size_t i = 1; i < c.size(); ++i) EXPECT_LT(c[i - 1][0], c[i][0]);
  EXPECT_EQ(d["trials"][0]["steps"], 1000);
}

TEST_F(ReportDataTest, EmptyAndOnlyFailedSweepsSayWhyThereIsNoImportance) {
  sweep(kConfig);
  json d = data();
  EXPECT_EQ(d["trials"].size(), 0u);
  EXPECT_EQ(d["best_trial"], nullptr);
  EXPECT_EQ(d["importance"].size(), 0u);
  EXPECT_NE(d["importance_note"].get<std::string>(), "");
  EXPECT_EQ(d["timeline"]["busy_fraction"], nullptr);

  run_ = store_->begin_run(1, 1, 1, "n1", false, 10);
  store_->put_queued_trial(0, {{"lr", 0.01}});
  store_->put_queued_trial(1, {{"lr", 0.02}});
  attempt(0, 1, 0, 10, {0.5}, TrialStatus::kFailed, "exit status 3");
  attempt(1, 1, 0, 12, {}, TrialStatus::kFailed, "exit status 3");
  d = data();
  EXPECT_EQ(d["counts"]["failed"], 2);
  EXPECT_EQ(d["best_trial"], nullptr);  // a failed trial's early value is no result
  EXPECT_EQ(d["history"].size(), 0u);
  EXPECT_EQ(d["importance"].size(), 0u);
}

TEST_F(ReportDataTest, NonFiniteValuesAreNullAndAStoreWithoutASweepRowIsAnEmptyReport) {
  const json empty = data();
  EXPECT_EQ(empty["sweep"]["found"], false);
  EXPECT_EQ(empty["trials"].size(), 0u);

  sweep(kConfig);
  run_ = store_->begin_run(1, 1, 1, "n1", false, 10);
  store_->put_queued_trial(0, {{"lr", std::numeric_limits<double>::infinity()}});
  attempt(0, 1, 0, 10, {std::nan(""), 0.5, std::numeric_limits<double>::infinity()},
          TrialStatus::kCompleted);
  const json d = data();
  EXPECT_EQ(d["trials"][0]["params"]["lr"], nullptr);
  EXPECT_EQ(d["curves"]["0"], json({{1, 0.5}}));
  EXPECT_TRUE(json::accept(script_safe_json(d)));
}

TEST_F(ReportDataTest, AConfigThisVersionRefusesStillGivesAReport) {
  sweep("method: {not: a method}\n");
  run_ = store_->begin_run(1, 1, 1, "n1", false, 10);
  store_->put_queued_trial(0, {{"zeta", 1}, {"alpha", 2}});
  attempt(0, 1, 0, 10, {0.5}, TrialStatus::kCompleted);
  const json d = data();
  EXPECT_EQ(d["sweep"]["method"], "");
  EXPECT_EQ(d["params"], json({"zeta", "alpha"}));  // as the trials hold them
}

TEST_F(ReportDataTest, AJobArraysStoresMergeWithALanePerTaskAndGroupAndTheLoadersFigures) {
  sweep(kConfig);
  run_ = store_->begin_run(1, 1, 1, "n1", false, 10);
  store_->put_queued_trial(0, {{"lr", 0.01}});
  store_->start_attempt(0, 1, run_, 0, "0", "n1", 10);
  store_->add_metrics(0, 1, 0, 11, 0.5,
                      {{"loss", 0.5}, {"loader/stall_fraction", 0.25}, {"loader/bytes_per_s", 1e6}},
                      Goal::kMinimize);
  store_->finish_attempt(0, 1, TrialStatus::kCompleted, "", "", 12, true);
  const fs::path other = dir_ / "task1";
  fs::create_directories(other);
  SqliteStore second(store_path(other), Store::Mode::kReadWrite);
  SweepRow r = *store_->sweep();
  second.write_sweep(r);
  const auto run2 = second.begin_run(1, 1, 1, "n2", false, 10);
  second.put_queued_trial(1, {{"lr", 0.02}});
  second.start_attempt(1, 1, run2, 0, "0", "n2", 10);
  second.add_metrics(1, 1, 0, 11, 0.4, {{"loss", 0.4}}, Goal::kMinimize);
  second.finish_attempt(1, 1, TrialStatus::kCompleted, "", "", 14, true);
  ReportOptions o;
  o.now = 20;
  const json d = report_data({store_.get(), &second}, o);
  EXPECT_EQ(d["sweep"]["stores"], 2);
  EXPECT_EQ(d["sweep"]["planned"], 8);  // each task plans its share
  EXPECT_EQ(d["counts"]["total"], 2);
  EXPECT_EQ(d["best_trial"], 1);
  EXPECT_EQ(d["timeline"]["lanes"], json({"task 0 group 0", "task 1 group 0"}));
  EXPECT_EQ(d["trials"][0]["loader"], json({{"stall_fraction", 0.25}, {"bytes_per_s", 1e6}}));
  EXPECT_EQ(d["trials"][1]["loader"], nullptr);
}

TEST(ScriptSafeJson, NothingInADataStringCanEndTheScriptElement) {
  const json j = {{"</script><script>alert(1)</script>", "<!-- & \xE2\x80\xA8 \xE2\x80\xA9 -->"},
                  {"bad utf8", std::string("\xFF\xFE ok")}};
  const std::string s = script_safe_json(j);
  EXPECT_EQ(s.find('<'), std::string::npos);
  EXPECT_EQ(s.find('>'), std::string::npos);
  EXPECT_EQ(s.find('&'), std::string::npos);
  EXPECT_EQ(s.find("\xE2\x80\xA8"), std::string::npos);
  EXPECT_EQ(s.find("\xE2\x80\xA9"), std::string::npos);
  const json back = json::parse(s);
  EXPECT_EQ(back.begin().key(), "</script><script>alert(1)</script>");
  EXPECT_EQ(back["</script><script>alert(1)</script>"], "<!-- & \xE2\x80\xA8 \xE2\x80\xA9 -->");
  EXPECT_EQ(back["bad utf8"], "\xEF\xBF\xBD\xEF\xBF\xBD ok");
}

TEST(HtmlPage, TheDataSitsInsideItsScriptElementAndEverythingIsInlined) {
  const json data = {{"trials", json::array({{{"params", {{"x", "</script><b>x</b>"}}}}})}};
  const std::string page = html_page(data);
  const auto open = page.find("<script id=\"xpscale-data\" type=\"application/json\">");
  ASSERT_NE(open, std::string::npos);
  const auto close = page.find("</script>", open);
  const std::string inside = page.substr(open, close - open);
  EXPECT_NE(inside.find("\\u003c/script\\u003e\\u003cb\\u003ex"), std::string::npos);
  // No network: no script or style from outside the page.
  EXPECT_EQ(page.find("<script src"), std::string::npos);
  EXPECT_EQ(page.find("rel=\"stylesheet\""), std::string::npos);
  EXPECT_EQ(page.find("href=\"http"), std::string::npos);
  EXPECT_NE(page.find("echarts"), std::string::npos);
  EXPECT_EQ(page.find("/*XPSCALE_"), std::string::npos);
}

}  // namespace
}  // namespace xpscale::report
