// The Slurm batch script (slurm_script.h) and the GPU choice of external
// trials (gpu_binding.h): what reaches bash and sbatch, and what is refused.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "xpscale/core/error.h"
#include "xpscale/launcher/gpu_binding.h"
#include "xpscale/launcher/slurm_script.h"

namespace xpscale::launcher {
namespace {

namespace fs = std::filesystem;

SlurmJob a_job() {
  SlurmJob job;
  job.xpscale = "/opt/xpscale/bin/xpscale";
  job.sweep = "/home/u/sweep.yaml";
  job.out_dir = "/home/u/runs/s";
  job.job_name = "s";
  job.time = "01:00:00";
  return job;
}

std::string render(const SlurmJob& job) { return render_sbatch(kSbatchTemplate, job); }

// Runs the rendered script's variable assignments in bash and prints
// run_cmd one word per line: what the job would execute.
std::string run_cmd_words(const std::string& script) {
  const auto dir =
      fs::temp_directory_path() /
      ("xpscale-sbatch-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
  fs::create_directories(dir);
  const auto prefix = script.substr(0, script.find("launcher="));
  {
    std::ofstream out(dir / "s.sh");
    out << prefix << "\nprintf '%s\\n' \"${run_cmd[@]}\" > " << (dir / "words").string() << '\n';
  }
  const std::string cmd = "SLURM_ARRAY_TASK_ID=1 bash " + (dir / "s.sh").string();
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(dir / "words");
  std::string words((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove_all(dir);
  return words;
}

TEST(SlurmScript, AsksForTheSignalRequeueAndLayout) {
  auto job = a_job();
  job.nodes = 4;
  job.ranks_per_node = 8;
  job.gpus_per_node = 8;
  job.signal_grace_s = 240;
  job.partition = "gpu";
  const auto s = render(job);
  EXPECT_NE(s.find("#SBATCH --nodes=4\n"), std::string::npos);
  EXPECT_NE(s.find("#SBATCH --ntasks-per-node=8\n"), std::string::npos);
  EXPECT_NE(s.find("#SBATCH --gpus-per-node=8\n"), std::string::npos);
  EXPECT_NE(s.find("#SBATCH --signal=B:USR1@240\n"), std::string::npos);
  EXPECT_NE(s.find("#SBATCH --requeue\n"), std::string::npos);
  EXPECT_NE(s.find("#SBATCH --partition=gpu\n"), std::string::npos);
  EXPECT_NE(s.find("#SBATCH --output=\"/home/u/runs/s/slurm/%j.out\"\n"), std::string::npos);
  EXPECT_EQ(s.find("#SBATCH --array"), std::string::npos);
  EXPECT_EQ(s.find('@' + std::string("RUN_CMD@")), std::string::npos);
}

TEST(SlurmScript, RunCommandWordsSurviveBashLiterally) {
  auto job = a_job();
  job.out_dir = "/tmp/it's $(touch x) `id` \"q\" dir";
  job.run_args = {"--note", "'; rm -rf /", "@RUN_CMD@"};
  job.array_size = 3;
  job.out_dir = "/tmp/it's $(touch x) `id` dir";
  const auto words = run_cmd_words(render(job));
  EXPECT_EQ(words,
            "/opt/xpscale/bin/xpscale\nrun\n/home/u/sweep.yaml\n--out-dir\n/tmp/it's $(touch x) "
            "`id` dir\n--preempt-grace\n150\n--kill-grace\n50\n--note\n'; rm -rf /\n@RUN_CMD@\n"
            "--array-task\n1\n--array-size\n3\n");
}

TEST(SlurmScript, InProcessTrainerGetsSweepAndOutDir) {
  auto job = a_job();
  job.trainer = "/opt/t/fashion mnist";
  EXPECT_EQ(run_cmd_words(render(job)),
            "/opt/t/fashion mnist\n--sweep\n/home/u/sweep.yaml\n--out-dir\n/home/u/runs/s\n");
}

TEST(SlurmScript, PercentInOutDirIsEscapedForSbatch) {
  auto job = a_job();
  job.out_dir = "/runs/100%";
  job.array_size = 2;
  EXPECT_NE(render(job).find("--output=\"/runs/100%%/slurm/%A_%a.out\""), std::string::npos);
}

TEST(SlurmScript, RefusesValuesThatCouldEscapeAnSbatchLine) {
  const std::pair<std::string, std::string SlurmJob::*> fields[] = {
      {"debug --wrap=id", &SlurmJob::partition},
      {"a;b", &SlurmJob::account},
      {"x\n#SBATCH --uid=0", &SlurmJob::job_name},
      {"1:00:00 --x", &SlurmJob::time},
      {"a\"b", &SlurmJob::constraint}};
  for (const auto& [value, field] : fields) {
    auto job = a_job();
    job.*field = value;
    EXPECT_THROW(render(job), UserError) << value;
  }
  auto job = a_job();
  job.out_dir = "/runs/a\"b";
  EXPECT_THROW(render(job), UserError);
  job = a_job();
  job.constraint = "(a100|h100)&ib";
  EXPECT_NE(render(job).find("#SBATCH --constraint=\"(a100|h100)&ib\""), std::string::npos);
}

TEST(SlurmScript, ChecksNumbersAndTimes) {
  for (const char* ok : {"30", "30:00", "12:00:00", "2-00:00:00", "1-12", "UNLIMITED"}) {
    auto job = a_job();
    job.time = ok;
    EXPECT_NO_THROW(render(job)) << ok;
  }
  auto job = a_job();
  job.nodes = 0;
  EXPECT_THROW(render(job), UserError);
  job = a_job();
  job.signal_grace_s = 0;
  EXPECT_THROW(render(job), UserError);
  job = a_job();
  job.launcher = "ssh";
  EXPECT_THROW(render(job), UserError);
}

// The message render() throws for `job`; fails the test if it renders.
std::string render_error(const SlurmJob& job) {
  try {
    render(job);
  } catch (const UserError& e) {
    return e.what();
  }
  ADD_FAILURE() << "rendered";
  return "";
}

TEST(SlurmScript, TimeLimitsAreBoundedClockTimes) {
  for (const char* ok : {"525600", "48:00:00", "90:00", "365-00:00:00", "0-23:59:59", "infinite"}) {
    auto job = a_job();
    job.time = ok;
    EXPECT_NO_THROW(render(job)) << ok;
  }
  for (const char* huge :
       {"99999999999", "525601", "366-00:00:00", "8761:00:00", "99999999999999999999999999-0"}) {
    auto job = a_job();
    job.time = huge;
    EXPECT_NE(render_error(job).find("is more than 365 days"), std::string::npos) << huge;
  }
  for (const char* clock : {"1:60", "1:00:60", "1-24", "1-00:60"}) {
    auto job = a_job();
    job.time = clock;
    EXPECT_NE(render_error(job).find("hours after a day count are < 24"), std::string::npos)
        << clock;
  }
  auto job = a_job();
  job.time = "-5";
  EXPECT_NE(render_error(job).find("expected a Slurm time limit"), std::string::npos);
}

TEST(SlurmScript, CountsAreBoundedAndNamed) {
  auto job = a_job();
  job.signal_grace_s = 70000;  // Slurm's --signal takes at most 65535 s
  EXPECT_EQ(render_error(job), "--signal-grace must be in [1, 65535], got 70000");
  job = a_job();
  job.array_size = 5'000'000;
  EXPECT_EQ(render_error(job), "--array must be in [0, 4000000], got 5000000");
  job = a_job();
  job.gpus_per_node = -1;
  EXPECT_EQ(render_error(job), "--gpus-per-node must be in [0, 4096], got -1");
  job = a_job();
  job.nodes = 1'000'000;
  EXPECT_EQ(render_error(job), "--nodes must be in [1, 100000], got 1000000");
}

TEST(SlurmScript, JobNameFromSweepName) {
  EXPECT_EQ(job_name_from("fmnist-mlp"), "fmnist-mlp");
  EXPECT_EQ(job_name_from("a b'; rm"), "a_b___rm");
  EXPECT_EQ(job_name_from("'''"), "xpscale");
  EXPECT_EQ(job_name_from(std::string(100, 'x')).size(), 64u);
}

TEST(GpuBinding, WithoutAListCountsFromZero) {
  EXPECT_EQ(select_visible_devices("", 1, 4, 2), "2,3");
}

TEST(GpuBinding, NodeWideListIsIndexedByNodeLocalRank) {
  EXPECT_EQ(select_visible_devices("4,5,6,7", 2, 4, 1), "6");
  EXPECT_EQ(select_visible_devices("0,1,2,3,4,5,6,7", 1, 4, 2), "2,3");
}

TEST(GpuBinding, PerTaskListIsTheRanksOwn) {
  // srun --gpus-per-task=1: each task sees only its device, often remapped to "0".
  EXPECT_EQ(select_visible_devices("0", 3, 4, 1), "0");
  EXPECT_EQ(select_visible_devices("5", 1, 8, 1), "5");
  EXPECT_EQ(select_visible_devices("2,3", 1, 4, 2), "2,3");
}

TEST(GpuBinding, AListThatFitsNeitherIsAnError) {
  try {
    select_visible_devices("0,1,2", 1, 4, 2);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA_VISIBLE_DEVICES=0,1,2"), std::string::npos);
  }
}

}  // namespace
}  // namespace xpscale::launcher
