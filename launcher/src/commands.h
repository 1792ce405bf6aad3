#pragma once
// The xpscale command's subcommands. Each takes the words after its name,
// returns the process exit status (kExitOk, ... in core/error.h), and
// throws for what goes wrong: main() turns the exception into a message
// and its category's exit status (UserError: 2).
#include <cstdint>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "xpscale/core/error.h"

namespace xpscale::cli {

int plan_command(const std::vector<std::string>& args);
int run_command(const std::vector<std::string>& args);
int launch_command(const std::vector<std::string>& args);
int report_command(const std::vector<std::string>& args);
int stop_command(const std::vector<std::string>& args);
int dashboard_command(const std::vector<std::string>& args);
int export_command(const std::vector<std::string>& args);
int shard_command(const std::vector<std::string>& args);
int slurm_command(const std::vector<std::string>& args);
int enqueue_command(const std::vector<std::string>& args);
int queue_command(const std::vector<std::string>& args);
int agent_command(const std::vector<std::string>& args);

// Parses args against `options` plus one positional argument called `name`
// (it shows in --help as part of the usage line, not as an option) into vm,
// and returns that argument ("" when absent).
std::string parse_command_line(const std::vector<std::string>& args,
                               const boost::program_options::options_description& options,
                               const char* name, boost::program_options::variables_map& vm);

// Throws UserError unless `seconds` is finite and in [0, kMaxOptionSeconds]
// (one day): "--kill-grace must be a number of seconds in [0, 86400], got inf".
void check_seconds_option(const std::string& flag, double seconds);

// Throws UserError unless min <= value <= max: "--nodes must be in [1, 100000],
// got 0".
void check_count_option(const std::string& flag, std::int64_t value, std::int64_t min,
                        std::int64_t max);

// "user@host pid N": who asked (stop requests, the queue's entries).
std::string who_am_i();

// This program's path (/proc/self/exe), or "xpscale" when it cannot be read.
std::string self_exe();

}  // namespace xpscale::cli
