#pragma once
// The xpscale command's subcommands. Each takes the words after its name,
// returns the process exit status, and throws UserError for bad input
// (main turns it into a message and status 2).
#include <string>
#include <vector>

namespace xpscale::cli {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;  // any user error: flags, config, files

int plan_command(const std::vector<std::string>& args);
int run_command(const std::vector<std::string>& args);
int launch_command(const std::vector<std::string>& args);
int report_command(const std::vector<std::string>& args);
int export_command(const std::vector<std::string>& args);
int shard_command(const std::vector<std::string>& args);
int slurm_command(const std::vector<std::string>& args);

// This program's path (/proc/self/exe), or "xpscale" when it cannot be read.
std::string self_exe();

}  // namespace xpscale::cli
