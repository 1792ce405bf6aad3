#include "xpscale/launcher/slurm_script.h"

#include <algorithm>
#include <map>
#include <regex>

#include "xpscale/config/command.h"
#include "xpscale/core/error.h"

namespace xpscale::launcher {
namespace {

// A value for a double-quoted #SBATCH argument. sbatch splits these lines
// itself (no shell), honouring double quotes; a quote, backslash or line
// break inside could end the value early, so they are refused.
std::string sbatch_quoted(const std::string& what, const std::string& value) {
  if (value.find_first_of("\"\\\n\r") != std::string::npos)
    throw UserError(what + " '" + value +
                    "' holds a double quote, backslash or line break, which a #SBATCH line cannot "
                    "carry; choose another");
  return "\"" + value + "\"";
}

// Partition, account, constraint and job names: Slurm's own names are
// made of these (constraints add their operators); anything else is a
// mistake or an attempt to inject options.
void check_name(const std::string& option, const std::string& value, bool constraint = false) {
  static const std::regex name("[A-Za-z0-9_.+-]+");
  static const std::regex expr(R"([A-Za-z0-9_.+\-&|,:*\[\]()!]+)");
  if (!std::regex_match(value, constraint ? expr : name))
    throw UserError(option + " '" + value + "': only letters, digits and " +
                    (constraint ? "_ . + - & | , : * [ ] ( ) !" : "_ . + -") + " are allowed");
}

// Bounds of the job's numbers. Slurm's own: --signal takes at most 65535
// seconds, MaxArraySize at most 4000001 (indices 0..4000000). The others
// are far beyond any cluster; a larger value is a typo.
constexpr int kMaxNodes = 100'000;
constexpr int kMaxPerNode = 4096;  // ranks, GPUs or CPUs per rank
constexpr int kMaxSignalGrace = 65535;
constexpr int kMaxArraySize = 4'000'000;
constexpr long long kMaxTimeDays = 365;

void check_range(const char* option, int value, int min, int max) {
  if (value < min || value > max)
    throw UserError(std::string(option) + " must be in [" + std::to_string(min) + ", " +
                    std::to_string(max) + "], got " + std::to_string(value));
}

// Slurm time limits: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S, or UNLIMITED. The
// leading field may be large ("90" minutes, "48:00:00"); the others are
// clock fields. At most kMaxTimeDays in all: 99999999999 minutes is a typo.
void check_time(const std::string& t) {
  if (t == "UNLIMITED" || t == "infinite") return;
  static const std::regex limit(
      R"((\d+)(?::(\d{1,2}))?(?::(\d{1,2}))?|(\d+)-(\d{1,2})(?::(\d{1,2}))?(?::(\d{1,2}))?)");
  std::smatch m;
  if (!std::regex_match(t, m, limit))
    throw UserError("--time '" + t +
                    "': expected a Slurm time limit such as 30 (minutes), 04:00:00 or 2-00:00:00");
  // A field of more than 12 digits counts as 10^12: far past the bound, and
  // no overflow below.
  auto field = [&](int i) {
    if (!m[i].matched) return 0LL;
    return m[i].length() > 12 ? 1'000'000'000'000LL : std::stoll(m[i].str());
  };
  long long seconds = 0;
  bool clock_ok = true;
  if (m[1].matched) {  // M, M:S or H:M:S
    if (m[3].matched) {
      seconds = field(1) * 3600 + field(2) * 60 + field(3);
      clock_ok = field(2) < 60 && field(3) < 60;
    } else {
      seconds = field(1) * 60 + field(2);
      clock_ok = field(2) < 60;
    }
  } else {  // D-H, D-H:M, D-H:M:S
    seconds = field(4) * 86400 + field(5) * 3600 + field(6) * 60 + field(7);
    clock_ok = field(5) < 24 && field(6) < 60 && field(7) < 60;
  }
  if (!clock_ok)
    throw UserError("--time '" + t +
                    "': hours after a day count are < 24, minutes and seconds after the first "
                    "field < 60");
  if (seconds > kMaxTimeDays * 86400)
    throw UserError("--time '" + t + "' is more than " + std::to_string(kMaxTimeDays) +
                    " days; give at most " + std::to_string(kMaxTimeDays) +
                    "-00:00:00, or UNLIMITED");
}

// sbatch expands %j, %A, %a ... in --output; a literal % is written %%.
std::string output_pattern(const std::string& path) {
  std::string out;
  for (char c : path) out += c == '%' ? std::string("%%") : std::string(1, c);
  return out;
}

// Replaces each @NAME@ of the template in one pass, so a value that happens
// to contain "@OTHER@" is never expanded again. Throws Error for a
// placeholder without a value (a template and program out of step).
std::string fill(const std::string& text, const std::map<std::string, std::string>& values) {
  std::string out;
  std::size_t at = 0;
  for (;;) {
    const std::size_t open = text.find('@', at);
    const std::size_t close = open == std::string::npos ? open : text.find('@', open + 1);
    if (close == std::string::npos) break;
    const std::string key = text.substr(open + 1, close - open - 1);
    const bool placeholder =
        !key.empty() && key.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ_") == std::string::npos;
    if (!placeholder) {
      out.append(text, at, close - at);
      at = close;
      continue;
    }
    auto it = values.find(key);
    if (it == values.end())
      throw Error("the sbatch template has an unknown placeholder @" + key + "@");
    out.append(text, at, open - at);
    out += it->second;
    at = close + 1;
  }
  out.append(text, at, std::string::npos);
  return out;
}

std::string sbatch_lines(const SlurmJob& job) {
  std::vector<std::string> lines;
  auto add = [&](const std::string& option) { lines.push_back("#SBATCH " + option); };
  add("--job-name=" + sbatch_quoted("--job-name", job.job_name));
  add("--nodes=" + std::to_string(job.nodes));
  add("--ntasks-per-node=" + std::to_string(job.ranks_per_node));
  if (job.gpus_per_node > 0) add("--gpus-per-node=" + std::to_string(job.gpus_per_node));
  if (job.cpus_per_rank > 0) add("--cpus-per-task=" + std::to_string(job.cpus_per_rank));
  add("--time=" + job.time);
  // B: only the batch shell gets the signal; the script forwards it.
  add("--signal=B:USR1@" + std::to_string(job.signal_grace_s));
  add("--requeue");
  // Requeued runs append to the same log instead of truncating it.
  add("--open-mode=append");
  const std::string log =
      output_pattern(job.out_dir) + (job.array_size > 0 ? "/slurm/%A_%a.out" : "/slurm/%j.out");
  add("--output=" + sbatch_quoted("out_dir", log));
  if (!job.partition.empty()) add("--partition=" + job.partition);
  if (!job.account.empty()) add("--account=" + job.account);
  if (!job.constraint.empty()) add("--constraint=" + sbatch_quoted("--constraint", job.constraint));
  if (job.array_size > 0) add("--array=0-" + std::to_string(job.array_size - 1));
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  text.pop_back();
  return text;
}

std::vector<std::string> run_words(const SlurmJob& job) {
  std::vector<std::string> words;
  if (job.trainer.empty()) {
    words = {job.xpscale,
             "run",
             job.sweep,
             "--out-dir",
             job.out_dir,
             "--preempt-grace",
             std::to_string(preempt_grace_for(job.signal_grace_s)),
             "--kill-grace",
             std::to_string(std::max(1, job.signal_grace_s / 6))};
  } else {
    words = {job.trainer, "--sweep", job.sweep, "--out-dir", job.out_dir};
  }
  words.insert(words.end(), job.run_args.begin(), job.run_args.end());
  return words;
}

}  // namespace

std::string job_name_from(const std::string& sweep_name) {
  std::string out;
  for (char c : sweep_name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    out += ok ? c : '_';
  }
  if (out.size() > 64) out.resize(64);
  if (out.find_first_not_of('_') == std::string::npos) return "xpscale";
  return out;
}

int preempt_grace_for(int signal_grace_s) { return std::max(1, signal_grace_s / 2); }

std::string render_sbatch(const std::string& template_text, const SlurmJob& job) {
  check_range("--nodes", job.nodes, 1, kMaxNodes);
  check_range("--ranks-per-node", job.ranks_per_node, 1, kMaxPerNode);
  check_range("--gpus-per-node", job.gpus_per_node, 0, kMaxPerNode);
  check_range("--cpus-per-rank", job.cpus_per_rank, 0, kMaxPerNode);
  check_range("--signal-grace", job.signal_grace_s, 1, kMaxSignalGrace);
  check_range("--array", job.array_size, 0, kMaxArraySize);
  if (job.launcher != "srun" && job.launcher != "mpirun")
    throw UserError("--launcher must be srun or mpirun, got '" + job.launcher + "'");
  check_time(job.time);
  check_name("--job-name", job.job_name);
  if (!job.partition.empty()) check_name("--partition", job.partition);
  if (!job.account.empty()) check_name("--account", job.account);
  if (!job.constraint.empty()) check_name("--constraint", job.constraint, true);

  std::string words;
  for (const auto& w : run_words(job)) words += (words.empty() ? "" : " ") + shell_quote(w);
  return fill(template_text, {{"SBATCH_LINES", sbatch_lines(job)},
                              {"OUT_DIR", shell_quote(job.out_dir)},
                              {"RUN_CMD", words},
                              {"ARRAY_SIZE", std::to_string(job.array_size)},
                              {"LAUNCHER", shell_quote(job.launcher)}});
}

}  // namespace xpscale::launcher
