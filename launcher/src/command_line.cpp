#include "commands.h"

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

}  // namespace xpscale::cli
