#include "commands.h"

#include <pwd.h>
#include <unistd.h>

#include <sstream>

#include "xpscale/coordinator/sweep_run.h"

namespace xpscale::cli {

namespace po = boost::program_options;

std::string parse_command_line(const std::vector<std::string>& args,
                               const po::options_description& options, const char* name,
                               po::variables_map& vm) {
  std::string value;
  po::options_description hidden;
  hidden.add_options()(name, po::value<std::string>(&value));
  po::options_description all;
  all.add(options).add(hidden);
  po::positional_options_description positional;
  positional.add(name, 1);
  po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
  po::notify(vm);
  return value;
}

void check_seconds_option(const std::string& flag, double seconds) {
  if (seconds >= 0 && seconds <= kMaxOptionSeconds) return;  // false for NaN
  std::ostringstream got;
  got << seconds;
  throw UserError(flag + " must be a number of seconds in [0, " +
                  std::to_string(static_cast<int>(kMaxOptionSeconds)) + "], got " + got.str());
}

void check_count_option(const std::string& flag, std::int64_t value, std::int64_t min,
                        std::int64_t max) {
  if (value >= min && value <= max) return;
  throw UserError(flag + " must be in [" + std::to_string(min) + ", " + std::to_string(max) +
                  "], got " + std::to_string(value));
}

std::string who_am_i() {
  std::string user = "?";
  if (const passwd* pw = ::getpwuid(::getuid())) user = pw->pw_name;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return user + "@" + host + " pid " + std::to_string(::getpid());
}

}  // namespace xpscale::cli
