// External trial processes: spawning, metrics pipe, exit status, and ending
// the whole process tree (launcher/process.h).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "xpscale/core/error.h"
#include "xpscale/launcher/process.h"

namespace xpscale::launcher {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Lines = std::vector<std::string>;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& p, const std::string& text, fs::perms perms = fs::perms(0644)) {
  std::ofstream(p, std::ios::binary) << text;
  fs::permissions(p, perms);
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// Pids of the running processes whose environment holds `marker`.
std::vector<pid_t> marked(const std::string& marker) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string env = read_file(e.path() / "environ");  // empty for zombies
    std::replace(env.begin(), env.end(), '\0', '\n');
    if (("\n" + env).find("\n" + marker + "\n") != std::string::npos)
      out.push_back(std::stoi(name));
  }
  return out;
}

std::string comm_of(pid_t pid) {
  std::string c = read_file("/proc/" + std::to_string(pid) + "/comm");
  if (!c.empty() && c.back() == '\n') c.pop_back();
  return c;
}

int count_comm(const std::vector<pid_t>& pids, const std::string& comm) {
  return static_cast<int>(
      std::count_if(pids.begin(), pids.end(), [&](pid_t p) { return comm_of(p) == comm; }));
}

// Zombie children of this process (what a missing waitpid leaves).
int zombie_children() {
  int n = 0;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string stat = read_file(e.path() / "stat");
    const auto rp = stat.rfind(')');
    if (rp == std::string::npos) continue;
    std::istringstream s(stat.substr(rp + 2));
    char state;
    int ppid;
    s >> state >> ppid;
    n += state == 'Z' && ppid == ::getpid();
  }
  return n;
}

class ProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    become_subreaper();
    char tmpl[] = "/tmp/xpscale_process_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    static std::atomic<int> counter{0};
    marker_ = "XPSCALE_TEST_MARKER=" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  SpawnSpec spec(std::vector<std::string> argv) const {
    SpawnSpec s;
    s.argv = std::move(argv);
    s.env = {"PATH=/usr/bin:/bin", marker_};
    s.stdout_path = dir_ / "out" / "stdout.log";
    s.stderr_path = dir_ / "out" / "stderr.log";
    return s;
  }
  SpawnSpec sh(const std::string& script) const { return spec({"sh", "-c", script}); }

  // Runs to the end and returns the stdout file's contents.
  std::string run(const SpawnSpec& s) {
    auto p = Process::spawn(s);
    const auto status = p.wait_for(5s);
    EXPECT_TRUE(status && status->ok()) << (status ? status->describe() : "timed out");
    return read_file(s.stdout_path);
  }

  fs::path dir_;
  std::string marker_;
};

TEST_F(ProcessTest, StdoutAndStderrGoToFilesAppendingAndParentDirsAreCreated) {
  auto s = sh("echo out; echo err >&2");
  EXPECT_EQ(run(s), "out\n");
  EXPECT_EQ(run(spec({"echo", "hello", "world"})), "out\nhello world\n");
  EXPECT_EQ(read_file(s.stderr_path), "err\n");
  struct stat st {};
  ASSERT_EQ(::stat(s.stdout_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(ProcessTest, EnvironmentIsExactlyTheSpecsPlusTheMetricsFd) {
  auto s = spec({"/usr/bin/env"});
  s.env = {"A=1", "B=x y", "XPSCALE_METRICS_FD=99"};
  s.metrics_pipe = false;
  EXPECT_EQ(run(s), "A=1\nB=x y\nXPSCALE_METRICS_FD=99\n");
  s.metrics_pipe = true;
  EXPECT_EQ(run(s), "A=1\nB=x y\nXPSCALE_METRICS_FD=99\nA=1\nB=x y\nXPSCALE_METRICS_FD=3\n");
}

TEST_F(ProcessTest, ProgramIsSearchedInTheChildsPathAndCwdIsApplied) {
  fs::create_directories(dir_ / "bin");
  write_file(dir_ / "bin" / "mytool", "#!/bin/sh\necho found; pwd\n", fs::perms(0755));
  auto s = spec({"mytool"});
  s.env = {"PATH=/nonexistent:" + (dir_ / "bin").string()};
  s.cwd = dir_ / "bin";
  EXPECT_EQ(run(s), "found\n" + (dir_ / "bin").string() + "\n");
}

TEST_F(ProcessTest, ExecFailureThrowsUserErrorAndLeavesNoZombie) {
  const int zombies = zombie_children();
  auto expect_error = [&](const SpawnSpec& s, const std::string& message) {
    try {
      Process::spawn(s);
      ADD_FAILURE() << "no error for " << s.argv[0];
    } catch (const UserError& e) {
      EXPECT_EQ(e.what(), message);
    }
  };
  expect_error(spec({"no-such-program-xyz"}),
               "cannot run 'no-such-program-xyz': No such file or directory");
  write_file(dir_ / "data.txt", "not a program\n");
  expect_error(spec({(dir_ / "data.txt").string()}),
               "cannot run '" + (dir_ / "data.txt").string() + "': Permission denied");
  write_file(dir_ / "noshebang", "echo hi\n", fs::perms(0755));  // no shell fallback
  expect_error(spec({(dir_ / "noshebang").string()}),
               "cannot run '" + (dir_ / "noshebang").string() + "': Exec format error");
  auto s = spec({"true"});
  s.cwd = dir_ / "missing";
  expect_error(s, "cannot run 'true': cannot change to directory '" + s.cwd.string() +
                      "': No such file or directory");
  EXPECT_EQ(zombie_children(), zombies);
  EXPECT_THROW(Process::spawn(spec({})), UserError);
}

TEST_F(ProcessTest, ChildHasOnlyStdioAndTheMetricsFdOpen) {
  const int leaked = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC on purpose
  ASSERT_GE(leaked, 0);
  auto s = spec({"/bin/ls", "/proc/self/fd"});  // ls itself opens the next free fd
  s.metrics_pipe = false;
  EXPECT_EQ(run(s), "0\n1\n2\n3\n");
  s.metrics_pipe = true;
  EXPECT_EQ(run(s), "0\n1\n2\n3\n0\n1\n2\n3\n4\n");
  ::close(leaked);
}

TEST_F(ProcessTest, ChildHasDefaultSignalsAndOwnProcessGroup) {
  sigset_t usr1, old;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  ::pthread_sigmask(SIG_BLOCK, &usr1, &old);
  const auto old_hup = ::signal(SIGHUP, SIG_IGN);
  auto p = Process::spawn(spec({"sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status; sleep 5"}));
  ::signal(SIGHUP, old_hup);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  EXPECT_EQ(::getpgid(p.pid()), p.pid());
  ASSERT_TRUE(eventually([&] { return read_file(dir_ / "out" / "stdout.log").size() >= 50; }));
  EXPECT_EQ(read_file(dir_ / "out" / "stdout.log"),
            "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
  EXPECT_EQ(p.terminate_tree(1s).describe(), "killed by signal 15 (SIGTERM)");
}

TEST_F(ProcessTest, ExitStatusDescribesCodesAndSignals) {
  auto p = Process::spawn(sh("exit 3"));
  auto s = p.wait_for(5s);
  ASSERT_TRUE(s);
  EXPECT_EQ(*s, (ExitStatus{3, 0, false}));
  EXPECT_FALSE(s->ok());
  EXPECT_EQ(s->describe(), "exited with status 3");
  EXPECT_EQ(p.poll(), s);  // cached
  auto k = Process::spawn(sh("kill -9 $$"));
  s = k.wait_for(5s);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->describe(), "killed by signal 9 (SIGKILL)");
  EXPECT_EQ((ExitStatus{0, SIGSEGV, true}).describe(),
            "killed by signal 11 (SIGSEGV), core dumped");
  EXPECT_EQ((ExitStatus{0, 0, false}).describe(), "exited with status 0");
  EXPECT_TRUE((ExitStatus{}).ok());
}

TEST_F(ProcessTest, WaitForTimesOutWithoutBusyWaiting) {
  auto p = Process::spawn(spec({"sleep", "1000"}));
  const auto t0 = Clock::now();
  const std::clock_t cpu0 = std::clock();
  EXPECT_EQ(p.wait_for(150ms), std::nullopt);
  const auto waited = Clock::now() - t0;
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 1s);
  EXPECT_LT(std::clock() - cpu0, CLOCKS_PER_SEC / 20);  // slept, did not spin
  EXPECT_EQ(p.poll(), std::nullopt);
  EXPECT_EQ(p.terminate_tree(1s).signal, SIGTERM);
}

TEST_F(ProcessTest, MetricsLinesKeepPartialLinesAcrossWrites) {
  auto s = sh(
      "printf 'a\\nb\\npar' >&3; while [ ! -e go ]; do sleep 0.01; done; printf 'tial\\nlast' >&3");
  s.cwd = dir_;
  auto p = Process::spawn(s);
  ASSERT_GE(p.metrics_fd(), 0);
  pollfd pfd{p.metrics_fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1);
  EXPECT_EQ(p.read_metrics_lines(), (Lines{"a", "b"}));
  EXPECT_EQ(p.read_metrics_lines(), Lines{});  // nothing new; "par" stays buffered
  write_file(dir_ / "go", "");
  ASSERT_TRUE(p.wait_for(5s));
  EXPECT_EQ(p.read_metrics_lines(), (Lines{"partial", "last"}));
  EXPECT_EQ(p.metrics_fd(), -1);  // drained to the end
  EXPECT_EQ(p.read_metrics_lines(), Lines{});
}

TEST_F(ProcessTest, OverlongMetricsLineIsCutAndFlagged) {
  auto p = Process::spawn(
      sh("echo first >&3; head -c 3000000 /dev/zero | tr '\\0' x >&3; echo >&3; echo ok >&3"));
  Lines lines;  // read while it writes: 3 MB do not fit in the pipe
  while (p.metrics_fd() >= 0) {
    pollfd pfd{p.metrics_fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&pfd, 1, 5000), 1);
    auto more = p.read_metrics_lines();
    lines.insert(lines.end(), more.begin(), more.end());
  }
  ASSERT_TRUE(p.wait_for(5s));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "first");
  EXPECT_FALSE(Process::is_cut_line(lines[0]));
  EXPECT_TRUE(Process::is_cut_line(lines[1]));
  EXPECT_EQ(lines[1], std::string(kMaxMetricsLine, 'x') + std::string(kCutLineMarker));
  EXPECT_EQ(lines[2], "ok");
  EXPECT_EQ(p.cut_lines(), 1u);
}

TEST_F(ProcessTest, NoMetricsPipeWhenDisabled) {
  auto s = sh("echo \"fd=${XPSCALE_METRICS_FD:-unset}\"");
  s.metrics_pipe = false;
  auto p = Process::spawn(s);
  EXPECT_EQ(p.metrics_fd(), -1);
  EXPECT_EQ(p.read_metrics_lines(), Lines{});
  ASSERT_TRUE(p.wait_for(5s));
  EXPECT_EQ(read_file(s.stdout_path), "fd=unset\n");
}

TEST_F(ProcessTest, TerminateTreeEndsGroupSetsidAndTermIgnoringDescendants) {
  // A sleep in the group; a shell in a session of its own (found through its
  // parent, so it gets SIGTERM during the grace period and says so); a shell
  // and its sleep that ignore SIGTERM, as does the direct child.
  auto p = Process::spawn(
      sh("sleep 1000 & "
         "setsid sh -c 'trap \"echo setsid-term >&3; exit 0\" TERM; sleep 1000 & wait' & "
         "sh -c 'trap \"\" TERM; sleep 1000; :' & "
         "trap '' TERM; echo ready >&3; wait"));
  ASSERT_TRUE(eventually([&] { return count_comm(marked(marker_), "sleep") == 3; }));
  const auto pids = marked(marker_);
  EXPECT_EQ(pids.size(), 6u);  // three sh, three sleep
  const auto t0 = Clock::now();
  const auto status = p.terminate_tree(300ms);
  const auto took = Clock::now() - t0;
  EXPECT_EQ(status.describe(), "killed by signal 9 (SIGKILL)");  // it ignored SIGTERM
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 3s);
  EXPECT_EQ(marked(marker_), std::vector<pid_t>{});
  for (pid_t pid : pids) EXPECT_FALSE(fs::exists("/proc/" + std::to_string(pid))) << pid;
  EXPECT_EQ(p.terminate_tree(1s), status);  // again: nothing left, same status
  Lines lines;
  while (p.metrics_fd() >= 0) {
    auto more = p.read_metrics_lines();
    lines.insert(lines.end(), more.begin(), more.end());
  }
  EXPECT_EQ(lines, (Lines{"ready", "setsid-term"}));
}

TEST_F(ProcessTest, TerminateTreeReturnsEarlyWhenEverythingEndsOnSigterm) {
  auto p = Process::spawn(sh("sleep 1000 & sleep 1000 & wait"));
  ASSERT_TRUE(eventually([&] { return count_comm(marked(marker_), "sleep") == 2; }));
  const auto t0 = Clock::now();
  EXPECT_EQ(p.terminate_tree(5s).signal, SIGTERM);
  EXPECT_LT(Clock::now() - t0, 2s);
  EXPECT_EQ(marked(marker_), std::vector<pid_t>{});
}

TEST_F(ProcessTest, DaemonisedGrandchildIsEndedAfterTheChildExited) {
  auto p = Process::spawn(sh("(setsid sleep 1000 &); (sleep 1000 &); exit 0"));
  const auto status = p.wait_for(5s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->ok());
  ASSERT_TRUE(eventually([&] { return count_comm(marked(marker_), "sleep") == 2; }));
  for (pid_t pid : marked(marker_)) EXPECT_EQ(::getpgid(pid) == pid, ::getsid(pid) == pid);
  EXPECT_EQ(p.terminate_tree(1s), *status);
  EXPECT_EQ(marked(marker_), std::vector<pid_t>{});
  EXPECT_EQ(zombie_children(), 0);
}

TEST_F(ProcessTest, DestructorEndsTheTree) {
  {
    auto p = Process::spawn(sh("setsid sleep 1000 & sleep 1000"));
    ASSERT_TRUE(eventually([&] { return count_comm(marked(marker_), "sleep") == 2; }));
    Process moved = std::move(p);
    EXPECT_EQ(p.pid(), -1);
    EXPECT_GT(moved.pid(), 0);
  }
  EXPECT_EQ(marked(marker_), std::vector<pid_t>{});
}

TEST_F(ProcessTest, ChildrenThatAreNotTheTreesAreSpared) {
  // An MPI-daemon-like child in its own session, started before the trial,
  // and a plain helper started after it: neither belongs to the trial.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  char* argv[] = {const_cast<char*>("sleep"), const_cast<char*>("1000"), nullptr};
  char* envp[] = {nullptr};
  pid_t daemon = 0, helper = 0;
  ASSERT_EQ(::posix_spawn(&daemon, "/bin/sleep", nullptr, &attr, argv, envp), 0);
  posix_spawnattr_destroy(&attr);
  auto p = Process::spawn(sh("(setsid sleep 1000 &); exit 0"));
  ASSERT_EQ(::posix_spawn(&helper, "/bin/sleep", nullptr, nullptr, argv, envp), 0);
  ASSERT_TRUE(p.wait_for(5s));
  ASSERT_TRUE(eventually([&] { return count_comm(marked(marker_), "sleep") == 1; }));
  p.terminate_tree(1s);
  EXPECT_EQ(marked(marker_), std::vector<pid_t>{});
  for (pid_t pid : {daemon, helper}) {
    EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), 0) << "child " << pid << " was ended";
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
}

TEST_F(ProcessTest, TwoTrialsKeepTheirOwnOrphans) {
  const std::string marker_a = marker_;
  auto a = Process::spawn(sh("(setsid sleep 1000 &); sleep 1000"));
  ASSERT_TRUE(eventually([&] { return count_comm(marked(marker_a), "sleep") == 2; }));
  marker_ += "b";
  auto b = Process::spawn(sh("(setsid sleep 1000 &); sleep 1000"));
  ASSERT_TRUE(eventually([&] { return count_comm(marked(marker_), "sleep") == 2; }));
  b.terminate_tree(1s);
  EXPECT_EQ(marked(marker_), std::vector<pid_t>{});
  EXPECT_EQ(marked(marker_a).size(), 3u);  // sh and both sleeps
  a.terminate_tree(1s);
  EXPECT_EQ(marked(marker_a), std::vector<pid_t>{});
}

TEST_F(ProcessTest, SignalGroupReachesTheChild) {
  auto p = Process::spawn(
      sh("trap 'echo usr1 >&3; exit 0' USR1; echo ready >&3; while :; do sleep 0.01; done"));
  pollfd pfd{p.metrics_fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1);
  EXPECT_EQ(p.read_metrics_lines(), Lines{"ready"});
  p.signal_group(SIGUSR1);
  const auto s = p.wait_for(5s);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->ok()) << s->describe();
  EXPECT_EQ(p.read_metrics_lines(), Lines{"usr1"});
  p.terminate_tree(1s);
  EXPECT_NO_THROW(p.signal_group(SIGUSR1));  // the group is gone: nothing to do
}

// kill -9 of a rank: its reaper ends the whole tree — the child, a setsid
// daemon and a child that ignores SIGTERM — within the orphan grace.
TEST_F(ProcessTest, TheWholeTreeEndsWhenTheProcessThatSpawnedItDies) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  auto s = sh("setsid sleep 1000 & (trap '' TERM; sleep 1001) & exec sleep 1002");
  s.orphan_grace = 300ms;
  const pid_t middle = ::fork();
  ASSERT_GE(middle, 0);
  if (middle == 0) {  // spawn, report when the tree is up, and die without cleaning up
    ::close(fds[0]);
    auto p = Process::spawn(s);
    while (count_comm(marked(marker_), "sleep") < 3) ::usleep(1000);
    [[maybe_unused]] auto n = ::write(fds[1], "x", 1);
    ::_exit(0);  // no destructor runs: only the reaper can end the tree
  }
  ::close(fds[1]);
  char x;
  ASSERT_EQ(::read(fds[0], &x, 1), 1);
  ::close(fds[0]);
  const auto died = std::chrono::steady_clock::now();  // about: it exits right after writing
  ASSERT_EQ(::waitpid(middle, nullptr, 0), middle);
  const bool gone = eventually([&] { return marked(marker_).empty(); });
  if (!gone)
    for (pid_t pid : marked(marker_)) ::kill(pid, SIGKILL);
  ASSERT_TRUE(gone) << "the tree outlived the process that spawned it";
  EXPECT_LT(std::chrono::steady_clock::now() - died, 2300ms);  // grace + 2 s
  // The reaper, orphaned to us (the subreaper), has exited too.
  EXPECT_TRUE(eventually([&] { return ::waitpid(-1, nullptr, WNOHANG) > 0; }));
}

TEST_F(ProcessTest, FileTailStartsAtALineAndRepairsUtf8) {
  EXPECT_EQ(file_tail(dir_ / "missing"), "");
  write_file(dir_ / "small", "one\ntwo\n");
  EXPECT_EQ(file_tail(dir_ / "small"), "one\ntwo\n");
  EXPECT_EQ(file_tail(dir_ / "small", 0), "");
  write_file(dir_ / "lines", "first line\nsecond line\nthird\n");
  EXPECT_EQ(file_tail(dir_ / "lines", 14), "third\n");               // window "nd line\nthird\n"
  EXPECT_EQ(file_tail(dir_ / "lines", 18), "second line\nthird\n");  // starts a line
  EXPECT_EQ(file_tail(dir_ / "lines", 6), "third\n");                // window starts a line
  EXPECT_EQ(file_tail(dir_ / "lines", 4), "ird\n");                  // no boundary: cut text
  write_file(dir_ / "utf8", "\xC3\xA9t\xC3\xA9 \xFF ok\n");          // été, a stray 0xFF
  EXPECT_EQ(file_tail(dir_ / "utf8"), "\xC3\xA9t\xC3\xA9 \xEF\xBF\xBD ok\n");
  EXPECT_EQ(file_tail(dir_ / "utf8", 10), "t\xC3\xA9 \xEF\xBF\xBD ok\n");  // cut inside é
  write_file(dir_ / "bad",
             "\xC0\xAF \xED\xA0\x80 \xF4\x90\x80\x80\n");  // overlong, surrogate, > U+10FFFF
  EXPECT_EQ(file_tail(dir_ / "bad"), std::string("\xEF\xBF\xBD\xEF\xBF\xBD ") +
                                         "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD " +
                                         "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\n");
  EXPECT_THROW(file_tail(dir_), Error);  // a directory cannot be read
}

}  // namespace
}  // namespace xpscale::launcher
