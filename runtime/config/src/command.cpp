#include "xpscale/config/command.h"

#include <cctype>

namespace xpscale {
namespace {

// Expands the word-level macros in one left-to-right pass, so text that a
// macro inserts (a program path, a parameter value) is never expanded again.
std::string expand_word(const std::string& word, const SweepConfig& config, const std::string& json,
                        const std::string& args_json_file) {
  std::string out;
  std::size_t pos = 0;
  while (pos < word.size()) {
    const std::size_t start = word.find("${", pos);
    const std::size_t end = start == std::string::npos ? start : word.find('}', start);
    if (end == std::string::npos) {
      out += word.substr(pos);
      break;
    }
    out += word.substr(pos, start - pos);
    const std::string name = word.substr(start + 2, end - start - 2);
    if (name == "env")
      out += "/usr/bin/env";
    else if (name == "interpreter")
      out += "python3";
    else if (name == "program")
      out += config.program;
    else if (name == "args_json")
      out += json;
    else if (name == "args_json_file")
      out += args_json_file;
    else
      out += word.substr(start, end - start + 1);  // the loader rejected unknown ones
    pos = end + 1;
  }
  return out;
}

}  // namespace

const std::vector<std::string>& command_macros() {
  static const std::vector<std::string> macros = {
      "env", "interpreter", "program", "args", "args_no_hyphens", "args_json", "args_json_file"};
  return macros;
}

std::string format_arg_value(const nlohmann::ordered_json& value) {
  if (value.is_string()) return value.get<std::string>();
  // W&B formats with Python's str(): True/False, None.
  if (value.is_boolean()) return value.get<bool>() ? "True" : "False";
  if (value.is_null()) return "None";
  return value.dump();
}

std::vector<std::string> build_command(const SweepConfig& config, const Params& params,
                                       const std::string& args_json_file) {
  static const std::vector<std::string> kDefault = {"${env}", "${interpreter}", "${program}",
                                                    "${args}"};
  const std::vector<std::string>& words = config.command.empty() ? kDefault : config.command;
  const std::string json = params.dump();
  std::vector<std::string> argv;
  for (const auto& word : words) {
    if (word == "${args}" || word == "${args_no_hyphens}") {
      const std::string dashes = word == "${args}" ? "--" : "";
      for (const auto& [name, value] : params.items())
        argv.push_back(dashes + name + "=" + format_arg_value(value));
      continue;
    }
    argv.push_back(expand_word(word, config, json, args_json_file));
  }
  return argv;
}

std::string shell_quote(const std::string& word) {
  if (word.empty()) return "''";
  bool plain = true;
  for (unsigned char c : word) {
    if (!(std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == '/' || c == '=' || c == ':' ||
          c == ',' || c == '+' || c == '@' || c == '%')) {
      plain = false;
      break;
    }
  }
  if (plain) return word;
  std::string out = "'";
  for (char c : word) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

}  // namespace xpscale
