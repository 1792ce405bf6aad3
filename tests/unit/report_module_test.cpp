// The trainer side of external trials: python/xpscale/report.py run as a
// child through Process, and runtime/include/xpscale/trial/report.h compiled in.
#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "xpscale/launcher/process.h"
#include "xpscale/trial/report.h"

namespace xpscale {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Lines = std::vector<std::string>;
using launcher::Process;
using launcher::SpawnSpec;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct PythonRun {
  launcher::ExitStatus status;
  Lines metrics;
  std::string out, err;
};

class ReportModuleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/xpscale_report_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    for (const char* v : {"XPSCALE_METRICS_FD", "XPSCALE_CHECKPOINT_DIR"}) ::unsetenv(v);
  }

  // Runs `code` with python3 and the module on PYTHONPATH.
  PythonRun python(const std::string& code, std::vector<std::string> env = {},
                   bool metrics_pipe = true) {
    SpawnSpec s;
    s.argv = {"python3", "-c", "import xpscale.report as xr\n" + code};
    s.env = {"PATH=/usr/bin:/bin", "PYTHONPATH=" XPSCALE_SOURCE_DIR "/python"};
    s.env.insert(s.env.end(), env.begin(), env.end());
    s.stdout_path = dir_ / "stdout";
    s.stderr_path = dir_ / "stderr";
    s.metrics_pipe = metrics_pipe;
    fs::remove(s.stdout_path);
    fs::remove(s.stderr_path);
    auto p = Process::spawn(s);
    PythonRun r;
    const auto status = p.wait_for(10s);
    EXPECT_TRUE(status) << "python3 did not finish";
    r.status = status ? *status : p.terminate_tree(0ms);
    while (p.metrics_fd() >= 0) {
      auto more = p.read_metrics_lines();
      r.metrics.insert(r.metrics.end(), more.begin(), more.end());
    }
    r.out = read_file(s.stdout_path);
    r.err = read_file(s.stderr_path);
    return r;
  }

  fs::path dir_;
};

TEST_F(ReportModuleTest, PythonReportWritesOneFlatJsonLinePerCall) {
  const auto r = python(
      "xr.report(loss=0.5, acc=1)\n"
      "xr.report({'loss': float('nan'), 'hist': [1.5, float('-inf')]}, step=10)\n"
      "xr.report(x=float('inf'), tag='a\"b', ok=True)\n"
      "class Scalar:\n"
      "    def item(self): return 0.25\n"
      "xr.report(step=2, lr=Scalar())\n");
  EXPECT_TRUE(r.status.ok()) << r.err;
  EXPECT_EQ(
      r.metrics,
      (Lines{R"({"step":0,"loss":0.5,"acc":1})", R"({"step":10,"loss":null,"hist":[1.5,null]})",
             R"({"step":11,"x":null,"tag":"a\"b","ok":true})", R"({"step":2,"lr":0.25})"}));
  EXPECT_EQ(r.err, "");
}

TEST_F(ReportModuleTest, PythonReportByHandPrintsToStderr) {
  const auto r = python("xr.report(loss=1.25)\nxr.report(loss=1.0)\n", {}, false);
  EXPECT_TRUE(r.status.ok()) << r.err;
  EXPECT_EQ(r.err, "{\"step\":0,\"loss\":1.25}\n{\"step\":1,\"loss\":1.0}\n");
}

TEST_F(ReportModuleTest, PythonRejectsReservedStepAndBadValues) {
  const auto r = python(
      "def fails(f):\n"
      "    try:\n"
      "        f()\n"
      "    except (ValueError, TypeError) as e:\n"
      "        print(type(e).__name__, e)\n"
      "fails(lambda: xr.report({'step': 3}))\n"
      "fails(lambda: xr.report(step=-1, loss=1))\n"
      "fails(lambda: xr.report(step=True, loss=1))\n"
      "fails(lambda: xr.report(loss=object()))\n"
      "fails(lambda: xr.report({'a': 1}, a=2))\n");
  EXPECT_TRUE(r.status.ok()) << r.err;
  EXPECT_EQ(r.out,
            "ValueError 'step' is reserved: pass report(..., step=N)\n"
            "ValueError step must be >= 0, got -1\n"
            "TypeError step must be an int, not bool\n"
            "TypeError metric 'loss': object is not a number or JSON value\n"
            "ValueError metric 'a' given twice\n");
  EXPECT_EQ(r.metrics, Lines{});
}

TEST_F(ReportModuleTest, PythonParamsTrialIdAndLeader) {
  const auto r = python(
      "import json\n"
      "p = xr.params()\n"
      "print(p['optimizer.lr'], xr.trial_id(), xr.is_leader())\n"
      "print(json.dumps(xr.unflatten(p), sort_keys=True))\n"
      "try:\n"
      "    xr.unflatten({'a': 1, 'a.b': 2})\n"
      "except ValueError as e:\n"
      "    print(e)\n",
      {R"(XPSCALE_PARAMS={"optimizer.lr":0.1,"optimizer.name":"adam","layers":2})",
       "XPSCALE_TRIAL_ID=t-0007", "RANK=1"});
  EXPECT_TRUE(r.status.ok()) << r.err;
  EXPECT_EQ(r.out,
            "0.1 t-0007 False\n"
            R"({"layers": 2, "optimizer": {"lr": 0.1, "name": "adam"}})"
            "\nparameter 'a' is both a value and a group (in 'a.b')\n");
  const auto by_hand = python(
      "print(xr.params(), xr.trial_id(), xr.is_leader(), "
      "xr.checkpoint_dir(), xr.resume_step())\n");
  EXPECT_EQ(by_hand.out, "{} None True None -1\n");
}

TEST_F(ReportModuleTest, PythonCheckpointRecordIsReadByCppAndBack) {
  const std::string ckpt = (dir_ / "ckpt").string();
  auto r = python("print(xr.resume_step())\nxr.checkpoint_saved(41)\nprint(xr.resume_step())\n",
                  {"XPSCALE_CHECKPOINT_DIR=" + ckpt});
  EXPECT_TRUE(r.status.ok()) << r.err;
  EXPECT_EQ(r.out, "-1\n41\n");
  EXPECT_EQ(read_file(dir_ / "ckpt" / "xpscale_checkpoint.json"), "{\"step\": 41}\n");
  EXPECT_EQ(report::resume_step(ckpt), 41);
  report::checkpoint_saved(42, ckpt);
  r = python("print(xr.resume_step())\n", {"XPSCALE_CHECKPOINT_DIR=" + ckpt});
  EXPECT_EQ(r.out, "42\n");
  EXPECT_EQ(fs::directory_iterator(dir_ / "ckpt")->path().filename(), "xpscale_checkpoint.json");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / "ckpt"), fs::directory_iterator()), 1);
}

TEST_F(ReportModuleTest, CppReportWritesJsonLinesToTheMetricsFd) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::setenv("XPSCALE_METRICS_FD", std::to_string(fds[1]).c_str(), 1);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  report::report(3, {{"loss", 0.25}, {"we\"ird\\\n\x01", nan}, {"big", 1e300}, {"n", -2}});
  report::report({{"acc", 0.1}});  // one after the last step
  report::report(7, {});
  ::close(fds[1]);
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) got.append(buf, n);
  ::close(fds[0]);
  EXPECT_EQ(got,
            "{\"step\":3,\"loss\":0.25,\"we\\\"ird\\\\\\n\\u0001\":null,\"big\":1e+300,\"n\":-2}\n"
            "{\"step\":4,\"acc\":0.1}\n"
            "{\"step\":7}\n");
}

TEST_F(ReportModuleTest, CppReportRejectsBadInput) {
  EXPECT_THROW(report::report(-1, {{"a", 1}}), std::invalid_argument);
  EXPECT_THROW(report::report(0, {{"step", 1}}), std::invalid_argument);
  EXPECT_THROW(report::report(0, {{"a", 1}, {"a", 2}}), std::invalid_argument);
  ::setenv("XPSCALE_METRICS_FD", "3x", 1);
  EXPECT_THROW(report::report(0, {{"a", 1}}), std::invalid_argument);
  ::setenv("XPSCALE_METRICS_FD", "999", 1);  // not open
  EXPECT_THROW(report::report(0, {{"a", 1}}), std::system_error);
}

TEST_F(ReportModuleTest, CppCheckpointRecordRoundTripsAndRejectsGarbage) {
  EXPECT_EQ(report::resume_step(""), -1);
  EXPECT_THROW(report::checkpoint_saved(1, ""), std::runtime_error);
  ::setenv("XPSCALE_CHECKPOINT_DIR", dir_.c_str(), 1);
  EXPECT_EQ(report::checkpoint_dir(), dir_.string());
  EXPECT_EQ(report::resume_step(), -1);
  report::checkpoint_saved(5);
  EXPECT_EQ(report::resume_step(), 5);
  report::checkpoint_saved(12);
  EXPECT_EQ(report::resume_step(), 12);
  std::ofstream(dir_ / "xpscale_checkpoint.json") << " { \"step\" :\t7 }\n";
  EXPECT_EQ(report::resume_step(), 7);
  std::ofstream(dir_ / "xpscale_checkpoint.json") << "{\"step\": 7, \"x\": 1}";
  EXPECT_THROW(report::resume_step(), std::runtime_error);
  std::ofstream(dir_ / "xpscale_checkpoint.json") << "{\"step\": -3}";
  EXPECT_THROW(report::resume_step(), std::runtime_error);
}

}  // namespace
}  // namespace xpscale
