// xpscale slurm render|submit|status: a sweep as a Slurm batch job.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "xpscale/config/command.h"
#include "xpscale/config/sweep_config.h"
#include "xpscale/launcher/slurm_script.h"
#include "xpscale/config/canonical_config.h"
#include "xpscale/store/postgres_store.h"
#include "xpscale/store/store.h"
#include "xpscale/trial/run.h"

extern char** environ;

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace xpscale::cli {
namespace {

using launcher::job_name_from;
using launcher::kSbatchTemplate;
using launcher::render_sbatch;
using launcher::SlurmJob;

constexpr const char* kUsage =
    "usage: xpscale slurm render SWEEP.yaml [options] [-- run options]\n"
    "       xpscale slurm submit SWEEP.yaml [options] [-- run options]\n"
    "       xpscale slurm submit --join SWEEP --store URL [options] [-- run options]\n"
    "       xpscale slurm status OUT_DIR [--format text|json]\n\n"
    "render prints the sweep's batch script (from slurm/sweep.sbatch.in); submit\n"
    "writes it to OUT_DIR/slurm/ and submits it with sbatch, then prints the job id\n"
    "and out_dir; status shows the job's state next to the sweep's progress.\n"
    "The job runs `srun --mpi=pmix xpscale run SWEEP` (or --trainer PROGRAM\n"
    "--sweep SWEEP) on nodes x ranks-per-node ranks. It asks for\n"
    "--signal=B:USR1@GRACE and --requeue: on the signal, trials checkpoint, the\n"
    "store is committed and the job requeues itself, then resumes (docs/slurm.md).\n"
    "Words after `--` are added to the run command. On a PostgreSQL store (--store)\n"
    "every job and array task is a worker of the one sweep; --join NAME adds workers\n"
    "to a sweep already in the store, found by its name (docs/store.md).\n\noptions";

// The job id file: one JSON line per submission, the last one is current.
fs::path jobs_file(const fs::path& out_dir) { return out_dir / "slurm" / "jobs.jsonl"; }

struct Captured {
  int status = 0;  // exit status, or 128 + signal
  std::string out;
};

// Runs argv (no shell) and returns its exit status and stdout; its stderr
// goes to ours, so Slurm's own messages reach the user. Hand-written over
// posix_spawnp: popen() would need a shell (the thing to avoid here), and
// Boost.Process needs Boost.Filesystem, which xpscale does not link.
Captured capture(const std::vector<std::string>& argv) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw Error(std::string("pipe2: ") + std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  std::vector<char*> cargv;
  for (const auto& w : argv) cargv.push_back(const_cast<char*>(w.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, cargv[0], &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw UserError("cannot run " + argv[0] + ": " + std::strerror(rc) +
                    " (is Slurm's client installed? apt-get install slurm-client)");
  }
  Captured c;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    c.out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  c.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return c;
}

std::string absolute(const std::string& path) {
  std::error_code ec;
  const auto p = fs::absolute(path, ec);
  return ec ? path : p.lexically_normal().string();
}

// The config of sweep `name` in the PostgreSQL store (--store, else
// XPSCALE_STORE), checked to be the one the sweep began with.
std::string joined_config(const std::string& name, std::string& url, const char* verb) {
  const std::string cmd = std::string("slurm ") + verb + " --join";
  if (url.empty())
    if (const char* env = std::getenv("XPSCALE_STORE")) url = env;
  if (url.empty() || !is_postgres_url(url))
    throw UserError(cmd + ": the sweep is found in a PostgreSQL store: pass --store "
                    "postgresql://user@host:port/database (or set XPSCALE_STORE)");
  std::optional<SweepRow> row;
  std::string where;
  try {
    PostgresStore store(url, name, Store::Mode::kReadOnly);
    row = store.sweep();
    where = store.location();
  } catch (const StoreError& e) {
    if (e.category() == ErrorCategory::kUser) throw UserError(cmd + ": " + e.what());
    throw;
  }
  if (!row)
    throw UserError(cmd + ": " + where +
                    " has not begun; start it first (xpscale slurm submit SWEEP.yaml --store "
                    "URL, or xpscale enqueue SWEEP.yaml)");
  const std::string path = row->config_path;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw UserError(cmd + ": the sweep's config " + path + " is not here" +
                    (fs::path(path).is_relative() ? " (a path relative to where the sweep began: "
                                                    "run this there)"
                                                  : "") +
                    "; the jobs run it from its file");
  const SweepConfig now = load_sweep_config(path);
  const auto match = match_stored_config(row->config_hash, row->config_text, now.text, now.path);
  if (!match.same)
    throw UserError(cmd + ": " + path + " changed since sweep '" + name +
                    "' began (" + match.difference + "); the jobs would be refused");
  return path;
}

struct JobRequest {
  SlurmJob job;
  std::string sweep_path;
  std::string store_url;  // the run's PostgreSQL store; "" for SQLite
};

// Parses render/submit's options and loads the sweep config (its errors
// are the user's: exit status 2).
std::optional<JobRequest> parse_job(const std::vector<std::string>& args_in, const char* verb) {
  std::vector<std::string> args, extra;
  bool after = false;
  for (const auto& a : args_in) {
    if (!after && a == "--") {
      after = true;
      continue;
    }
    (after ? extra : args).push_back(a);
  }
  JobRequest r;
  SlurmJob& job = r.job;
  std::string out_dir, trainer, join, store;
  int ranks_per_node = 0;
  po::options_description desc(kUsage);
  desc.add_options()("help,h", "show this help")(
      "nodes", po::value<int>(&job.nodes)->default_value(1), "nodes to ask for")(
      "gpus-per-node", po::value<int>(&job.gpus_per_node)->default_value(0),
      "GPUs per node (--gpus-per-node); 0: none")(
      "ranks-per-node", po::value<int>(&ranks_per_node),
      "MPI ranks per node (default: gpus-per-node, or resources.ranks_per_trial without GPUs)")(
      "cpus-per-rank", po::value<int>(&job.cpus_per_rank)->default_value(0),
      "CPUs per rank (--cpus-per-task); 0: Slurm's default")(
      "time", po::value<std::string>(&job.time)->default_value("01:00:00"),
      "time limit (HH:MM:SS, D-HH:MM:SS, or minutes)")(
      "partition", po::value<std::string>(&job.partition), "partition")(
      "account", po::value<std::string>(&job.account), "account")(
      "constraint", po::value<std::string>(&job.constraint), "node features (--constraint)")(
      "signal-grace", po::value<int>(&job.signal_grace_s)->default_value(300),
      "seconds before the time limit when the job is told to checkpoint and requeue")(
      "array", po::value<int>(&job.array_size)->default_value(0),
      "a job array of N tasks, each running its share of the trials (0: one job)")(
      "job-name", po::value<std::string>(&job.job_name), "job name (default: the sweep's name)")(
      "out-dir", po::value<std::string>(&out_dir), "where results go (default: the config's)")(
      "trainer", po::value<std::string>(&trainer),
      "an in-process trainer (xpscale::run) to run instead of `xpscale run`")(
      "launcher", po::value<std::string>(&job.launcher)->default_value("srun"),
      "srun (--mpi=pmix) or mpirun inside the allocation")(
      "store", po::value<std::string>(&store),
      "a postgresql://user@host:port/database store for the run (default: the config's "
      "store:, else XPSCALE_STORE)")(
      "join", po::value<std::string>(&join),
      "add workers to sweep NAME of the PostgreSQL store (its config is found there)");
  po::variables_map vm;
  r.sweep_path = parse_command_line(args, desc, "sweep", vm);
  if (vm.count("help")) {
    std::cout << desc;
    return std::nullopt;
  }
  if (!join.empty()) {
    if (!r.sweep_path.empty())
      throw UserError(std::string("slurm ") + verb + ": --join " + join +
                      " finds the sweep's config in the store; give no SWEEP.yaml with it");
    if (vm.count("out-dir"))
      throw UserError(std::string("slurm ") + verb +
                      ": --join runs the sweep where it runs; --out-dir cannot move it");
    r.sweep_path = joined_config(join, store, verb);
  }
  if (r.sweep_path.empty())
    throw UserError(std::string("slurm ") + verb + ": missing SWEEP.yaml; see --help");

  const SweepConfig config = load_sweep_config(r.sweep_path);
  print_config_warnings(config, std::cerr);  // before submitting, not only in the job's log
  // The store, as the run will choose it: a PostgreSQL one goes on the
  // run's command line (without its password, which the job finds in
  // PGPASSWORD or ~/.pgpass as this command does).
  const std::string url =
      chosen_store_url(store.empty() ? std::nullopt : std::optional(store), config);
  if (url.empty() && job.array_size > 0 && config.method == SearchMethod::kBayes)
    throw UserError(std::string("slurm ") + verb +
                    ": method: bayes (TPE) learns from every result, and array tasks on SQLite "
                    "keep separate stores; give a PostgreSQL store (--store postgresql://...), on "
                    "which every task is a worker of the one sweep, or drop --array");
  r.store_url = url;
  if (!join.empty()) {
    // The new worker must share the sweep's out_dir (its trials'
    // checkpoints), which the first job marked with xpscale.store.
    const auto pointer = read_store_pointer(absolute(config.out_dir));
    if (!pointer || pointer->sweep != join)
      throw UserError(std::string("slurm ") + verb + " --join: " + absolute(config.out_dir) +
                      " (the config's out_dir, seen from here) is not the out_dir of sweep '" + join +
                      "' (no xpscale.store there names it); run this from the directory where "
                      "the sweep began");
  }
  if (!url.empty() && std::find(extra.begin(), extra.end(), "--store") == extra.end())
    extra.insert(extra.begin(), {"--store", url_without_password(url)});
  if (trainer.empty() && !config.is_external())
    throw UserError(r.sweep_path +
                    " has no 'program' or 'command' for `xpscale run`; pass --trainer PROGRAM "
                    "for a trainer linked with xpscale::run()");
  job.xpscale = self_exe();
  job.trainer = trainer.empty() ? "" : absolute(trainer);
  job.sweep = absolute(r.sweep_path);
  job.out_dir = absolute(vm.count("out-dir") ? out_dir : config.out_dir);
  if (job.job_name.empty())
    job.job_name =
        job_name_from(config.name.empty() ? fs::path(r.sweep_path).stem().string() : config.name);
  job.ranks_per_node = vm.count("ranks-per-node") ? ranks_per_node
                       : job.gpus_per_node > 0    ? job.gpus_per_node
                                               : static_cast<int>(config.resources.ranks_per_trial);
  job.run_args = extra;
  return r;
}

int render(const std::vector<std::string>& args) {
  auto r = parse_job(args, "render");
  if (!r) return kExitOk;
  std::cout << render_sbatch(kSbatchTemplate, r->job);
  return kExitOk;
}

void write_new_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out.flush()) throw UserError("cannot write " + path.string() + ": " + std::strerror(errno));
}

int submit(const std::vector<std::string>& args) {
  auto r = parse_job(args, "submit");
  if (!r) return kExitOk;
  const std::string script = render_sbatch(kSbatchTemplate, r->job);
  // A password written in --store reaches the job in PGPASSWORD, which
  // sbatch passes on with the environment; never in the script.
  if (const std::string password = url_password(r->store_url); !password.empty())
    ::setenv("PGPASSWORD", password.c_str(), 1);
  const fs::path dir = fs::path(r->job.out_dir) / "slurm";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw UserError("cannot create " + dir.string() + ": " + ec.message());
  const auto now = std::time(nullptr);
  const fs::path path = dir / ("job-" + std::to_string(now) + ".sbatch");
  write_new_file(path, script);
  Captured result;
  try {
    result = capture({"sbatch", "--parsable", path.string()});
  } catch (...) {
    fs::remove(path, ec);
    throw;
  }
  if (result.status != 0) {
    fs::remove(path, ec);  // nothing was submitted: leave nothing behind
    throw UserError("sbatch exited with status " + std::to_string(result.status) +
                    " (its message is above); nothing was submitted (see the script with "
                    "`xpscale slurm render`)");
  }
  // --parsable prints "JOBID" or "JOBID;CLUSTER".
  std::string id = result.out.substr(0, result.out.find_first_of(";\n"));
  if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
    throw Error("sbatch printed '" + result.out + "', not a job id");
  std::ofstream jobs(jobs_file(r->job.out_dir), std::ios::app);
  jobs << nlohmann::json{{"job", id},
                         {"script", path.string()},
                         {"submitted_at", static_cast<double>(now)},
                         {"array", r->job.array_size}}
              .dump()
       << '\n';
  if (!jobs.flush()) throw Error("cannot append to " + jobs_file(r->job.out_dir).string());
  std::cout << "submitted job " << id << "; out_dir " << r->job.out_dir << '\n';
  std::cerr << "xpscale: follow it with: xpscale slurm status " << shell_quote(r->job.out_dir)
            << '\n';
  return kExitOk;
}

// The sweep's progress over every store of out_dir (job arrays have one
// file per task; a PostgreSQL sweep is named by out_dir/xpscale.store).
nlohmann::ordered_json progress(const fs::path& out_dir) {
  nlohmann::ordered_json p;
  std::map<std::string, std::uint64_t> by_status;
  std::uint64_t planned = 0;
  std::optional<double> best;
  bool maximize = false;
  std::string metric;
  const auto stores = open_out_dir_stores(out_dir, Store::Mode::kReadOnly);
  for (const auto& store : stores) {
    if (auto s = store->sweep()) {
      planned += s->planned;
      metric = s->metric;
      maximize = s->goal == Goal::kMaximize;
    }
    for (const auto& t : store->trials()) {
      ++by_status[std::string(trial_status_name(t.status))];
      if (t.best_value && (!best || (maximize ? *t.best_value > *best : *t.best_value < *best)))
        best = t.best_value;
    }
  }
  p["stores"] = stores.size();
  p["planned"] = planned;
  for (const char* s : {"completed", "stopped", "failed", "running", "queued"}) p[s] = by_status[s];
  p["metric"] = metric;
  p["best"] = best ? nlohmann::ordered_json(*best) : nullptr;
  return p;
}

int status(const std::vector<std::string>& args) {
  std::string out_dir, format = "text";
  po::options_description desc(kUsage);
  desc.add_options()("help,h", "show this help")(
      "format", po::value<std::string>(&format)->default_value("text"), "text | json");
  po::variables_map vm;
  out_dir = parse_command_line(args, desc, "out_dir", vm);
  if (vm.count("help")) {
    std::cout << desc;
    return kExitOk;
  }
  if (out_dir.empty()) throw UserError("slurm status: missing OUT_DIR; see --help");
  if (format != "text" && format != "json")
    throw UserError("slurm status: --format must be text or json, got '" + format + "'");
  std::ifstream in(jobs_file(out_dir));
  if (!in)
    throw UserError(out_dir + " holds no submitted job (" + jobs_file(out_dir).string() +
                    " does not exist); submit with `xpscale slurm submit`");
  nlohmann::json last;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) last = nlohmann::json::parse(line, nullptr, false);
  if (!last.is_object() || !last.contains("job"))
    throw UserError(jobs_file(out_dir).string() + " is not a list of submitted jobs");
  const std::string job = last["job"].get<std::string>();

  // --states=all: finished jobs too, for as long as slurmctld keeps them.
  const auto q =
      capture({"squeue", "--states=all", "--noheader", "--jobs=" + job, "--format=%i|%T|%M|%l|%R"});
  auto tasks = nlohmann::ordered_json::array();
  std::istringstream lines(q.out);
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::string> f;
    std::istringstream fields(line);
    for (std::string x; std::getline(fields, x, '|');) f.push_back(x);
    if (f.size() < 5) continue;
    tasks.push_back(
        {{"id", f[0]}, {"state", f[1]}, {"elapsed", f[2]}, {"limit", f[3]}, {"where", f[4]}});
  }
  nlohmann::ordered_json j;
  j["job"] = job;
  j["script"] = last.value("script", "");
  j["squeue_status"] = q.status;
  j["tasks"] = tasks;
  j["sweep"] = progress(out_dir);
  if (format == "json") {
    std::cout << j.dump(2) << '\n';
    return kExitOk;
  }
  std::cout << "job " << job << " (" << j["script"].get<std::string>() << ")\n";
  if (tasks.empty())
    std::cout << "  not in Slurm's queue any more (finished a while ago, or squeue failed)\n";
  for (const auto& t : tasks)
    std::cout << "  " << t["id"].get<std::string>() << "  " << t["state"].get<std::string>()
              << "  elapsed " << t["elapsed"].get<std::string>() << " of "
              << t["limit"].get<std::string>() << "  " << t["where"].get<std::string>() << '\n';
  const auto& p = j["sweep"];
  std::cout << "sweep: " << p["planned"] << " trials: " << p["completed"] << " completed, "
            << p["stopped"] << " stopped, " << p["failed"] << " failed, " << p["running"]
            << " running, " << p["queued"] << " queued";
  if (!p["best"].is_null())
    std::cout << "; best " << p["metric"].get<std::string>() << " " << p["best"];
  std::cout << '\n';
  return kExitOk;
}

}  // namespace

int slurm_command(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    std::cout << "usage: xpscale slurm render|submit|status ...; xpscale slurm render --help\n";
    return args.empty() ? kExitUsage : kExitOk;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "render") return render(rest);
  if (args[0] == "submit") return submit(rest);
  if (args[0] == "status") return status(rest);
  throw UserError("slurm: unknown subcommand '" + args[0] + "'; expected render, submit or status");
}

}  // namespace xpscale::cli
