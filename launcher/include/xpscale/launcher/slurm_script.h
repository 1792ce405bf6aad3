#pragma once
// The batch script of `xpscale slurm render|submit`: slurm/sweep.sbatch.in
// with its placeholders filled in.
//
// Nothing a user wrote reaches the shell unquoted: values in the script
// body are quoted for bash (xpscale::shell_quote), values in #SBATCH lines
// (which sbatch parses itself, not bash) are double-quoted and must not
// hold '"', '\', or a line break; names such as the partition are checked
// against Slurm's own character set. Parameter values never appear in the
// script at all: the job reads the sweep config by its path.
#include <cstdint>
#include <string>
#include <vector>

namespace xpscale::launcher {

struct SlurmJob {
  // Paths, absolute.
  std::string xpscale;   // this program, runs `xpscale run`
  std::string trainer;   // an in-process trainer (xpscale::run) instead; may be empty
  std::string sweep;     // the sweep config
  std::string out_dir;   // the sweep's out_dir; the job's output goes to out_dir/slurm/
  std::string job_name;  // checked like the partition
  int nodes = 1;
  int ranks_per_node = 1;
  int gpus_per_node = 0;
  int cpus_per_rank = 0;  // 0: Slurm's default
  std::string time;       // Slurm time limit, e.g. 12:00:00 or 2-00:00:00
  int signal_grace_s = 300;
  std::string partition, account, constraint;  // empty: not asked for
  int array_size = 0;                          // > 0: a job array of that many tasks
  std::string launcher = "srun";               // srun | mpirun
  std::vector<std::string> run_args;           // more `xpscale run` options, quoted as given
};

// The text of `template_text` (slurm/sweep.sbatch.in) for `job`. Throws
// UserError naming the option for a value that cannot be passed safely or
// is out of range: nodes 1..100000; ranks, GPUs per node and CPUs per rank
// up to 4096; signal grace 1..65535 s (Slurm's limit); array up to 4000000
// tasks; time a Slurm time limit of at most 365 days (or UNLIMITED).
std::string render_sbatch(const std::string& template_text, const SlurmJob& job);

// A job name derived from a sweep name: characters outside [A-Za-z0-9._-]
// become '_', at most 64 characters, "xpscale" when nothing is left.
std::string job_name_from(const std::string& sweep_name);

// Seconds a trial gets to checkpoint after SIGUSR1 for a job signal grace
// of `signal_grace_s`: the rest is left for ending the trial's processes,
// committing the store and requeueing the job.
int preempt_grace_for(int signal_grace_s);

// The template compiled into the program (slurm/sweep.sbatch.in).
extern const char* const kSbatchTemplate;

}  // namespace xpscale::launcher
