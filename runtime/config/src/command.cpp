#include "xpscale/config/command.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <string_view>
#include <map>

namespace xpscale {
namespace {

// Python's repr() of a str: single quotes unless the text holds a single
// quote and no double quote; backslash escapes for the quote, the backslash
// and control characters. Text beyond ASCII is printable and stays as is.
void append_python_repr(std::string& out, const std::string& s) {
  const bool dq = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char quote = dq ? '"' : '\'';
  out += quote;
  for (unsigned char c : s) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c == static_cast<unsigned char>(quote)) {
          out += '\\';
          out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
          static const char kHex[] = "0123456789abcdef";
          out += "\\x";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += quote;
}

// Python's str() (top == true) or repr() (inside a list or dict) of a value.
// Numbers: nlohmann's shortest round-trip form is Python's float repr
// (1e-05, 1e+16, 100.0).
void append_python(std::string& out, const nlohmann::ordered_json& v, bool top) {
  switch (v.type()) {
    case nlohmann::ordered_json::value_t::string:
      if (top)
        out += v.get_ref<const std::string&>();
      else
        append_python_repr(out, v.get_ref<const std::string&>());
      return;
    case nlohmann::ordered_json::value_t::boolean:
      out += v.get<bool>() ? "True" : "False";
      return;
    case nlohmann::ordered_json::value_t::null:
      out += "None";
      return;
    case nlohmann::ordered_json::value_t::array: {
      out += '[';
      bool first = true;
      for (const auto& x : v) {
        if (!first) out += ", ";
        first = false;
        append_python(out, x, false);
      }
      out += ']';
      return;
    }
    case nlohmann::ordered_json::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& [k, x] : v.items()) {
        if (!first) out += ", ";
        first = false;
        append_python_repr(out, k);
        out += ": ";
        append_python(out, x, false);
      }
      out += '}';
      return;
    }
    default:
      out += v.dump();
  }
}

// Python's json.dumps() with its defaults: ", " and ": " separators,
// non-ASCII escaped as \uXXXX.
void append_python_json(std::string& out, const nlohmann::ordered_json& v) {
  if (v.is_array()) {
    out += '[';
    bool first = true;
    for (const auto& x : v) {
      if (!first) out += ", ";
      first = false;
      append_python_json(out, x);
    }
    out += ']';
  } else if (v.is_object()) {
    out += '{';
    bool first = true;
    for (const auto& [k, x] : v.items()) {
      if (!first) out += ", ";
      first = false;
      out += nlohmann::ordered_json(k).dump(-1, ' ', true);
      out += ": ";
      append_python_json(out, x);
    }
    out += '}';
  } else {
    out += v.dump(-1, ' ', true);
  }
}

// Inserts `value` under `path` below `root` (objects made on the way).
void put_path(nlohmann::json& root, const std::vector<std::string>& path,
              const nlohmann::json& value) {
  nlohmann::json* at = &root;
  for (std::size_t i = 0; i + 1 < path.size(); ++i) {
    nlohmann::json& next = (*at)[path[i]];
    if (!next.is_object()) next = nlohmann::json::object();
    at = &next;
  }
  (*at)[path.back()] = value;
}

// The arguments as W&B's service sends them: top-level name -> value, sorted;
// or, with `nested_args: dotted`, the dotted names in config order.
nlohmann::ordered_json command_args(const SweepConfig& config, const Params& params) {
  if (config.nested_args == NestedArgs::kDotted) return params;
  return nested_params(config, params);
}

bool is_word_macro(const std::string& word) {
  static const std::vector<std::string> kWords = {
      "${args}",           "${args_no_hyphens}",   "${args_no_boolean_flags}",
      "${args_no_equals}", "${args_append_hydra}", "${args_override_hydra}"};
  return std::find(kWords.begin(), kWords.end(), word) != kWords.end();
}

void expand_args(const std::string& word, const nlohmann::ordered_json& args,
                 std::vector<std::string>& argv) {
  for (const auto& [name, value] : args.items()) {
    const std::string text = format_arg_value(value);
    if (word == "${args}") {
      argv.push_back("--" + name + "=" + text);
    } else if (word == "${args_no_hyphens}") {
      argv.push_back(name + "=" + text);
    } else if (word == "${args_no_boolean_flags}") {
      if (value.is_boolean()) {
        if (value.get<bool>()) argv.push_back("--" + name);
      } else {
        argv.push_back("--" + name + "=" + text);
      }
    } else if (word == "${args_no_equals}") {
      argv.push_back("--" + name);
      argv.push_back(text);
    } else if (word == "${args_append_hydra}") {
      argv.push_back("+" + name + "=" + text);
    } else if (word == "${args_override_hydra}") {
      argv.push_back("++" + name + "=" + text);
    }
  }
}

// Expands the text macros in one left-to-right pass, so text that a macro
// inserts (a program path, a parameter value, an environment variable) is
// never expanded again.
std::string expand_word(const std::string& word, const SweepConfig& config,
                        const std::string& json, const CommandContext& context) {
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
    if (name == "env") {
      out += "/usr/bin/env";
    } else if (name == "interpreter") {
      out += context.interpreter;
    } else if (name == "program") {
      out += config.program;
    } else if (name == "args_json") {
      out += json;
    } else if (name == "args_json_file") {
      out += context.args_json_file;
    } else if (name.rfind("envvar:", 0) == 0) {
      const std::string var = name.substr(7);
      const char* value = std::getenv(var.c_str());
      out += value ? std::string(value) : var;  // W&B: the name when unset
    } else {
      out += word.substr(start, end - start + 1);  // the loader rejected unknown ones
    }
    pos = end + 1;
  }
  return out;
}

}  // namespace

const std::vector<std::string>& command_macros() {
  static const std::vector<std::string> macros = {"env",
                                                  "interpreter",
                                                  "program",
                                                  "args",
                                                  "args_no_hyphens",
                                                  "args_no_boolean_flags",
                                                  "args_no_equals",
                                                  "args_append_hydra",
                                                  "args_override_hydra",
                                                  "args_json",
                                                  "args_json_file",
                                                  "envvar:NAME"};
  return macros;
}

std::string format_arg_value(const nlohmann::ordered_json& value) {
  std::string out;
  append_python(out, value, true);
  return out;
}

nlohmann::ordered_json nested_params(const SweepConfig& config, const Params& params) {
  // nlohmann::json (std::map) keeps keys sorted, as W&B's service sends them.
  nlohmann::json nested = nlohmann::json::object();
  std::map<std::string, const ParameterSpec*> spec_of;
  for (const auto& spec : config.parameters) spec_of.emplace(spec.name, &spec);
  for (const auto& [name, value] : params.items()) {
    auto it = spec_of.find(name);
    if (it != spec_of.end() && !it->second->path.empty())
      put_path(nested, it->second->path, value);
    else
      nested[name] = value;
  }
  return nlohmann::ordered_json(nested);  // keeps the sorted order
}

std::string args_json(const SweepConfig& config, const Params& params) {
  std::string out;
  append_python_json(out, command_args(config, params));
  return out;
}

std::vector<std::string> build_command(const SweepConfig& config, const Params& params,
                                       const CommandContext& context) {
  static const std::vector<std::string> kDefault = {"${env}", "${interpreter}", "${program}",
                                                    "${args}"};
  const std::vector<std::string>& words = config.command.empty() ? kDefault : config.command;
  const nlohmann::ordered_json args = command_args(config, params);
  std::string json;
  append_python_json(json, args);
  std::vector<std::string> argv;
  for (const auto& word : words) {
    if (is_word_macro(word))
      expand_args(word, args, argv);
    else
      argv.push_back(expand_word(word, config, json, context));
  }
  return argv;
}

bool uses_interpreter(const SweepConfig& config) {
  if (config.command.empty()) return true;  // the default command
  return std::any_of(config.command.begin(), config.command.end(), [](const std::string& w) {
    return w.find("${interpreter}") != std::string::npos;
  });
}

std::optional<std::string> find_interpreter(const std::string& path_env) {
  std::vector<std::filesystem::path> dirs;
  std::string_view rest = path_env;
  for (;;) {
    const std::size_t colon = rest.find(':');
    const std::string_view dir = rest.substr(0, colon);
    dirs.emplace_back(dir.empty() ? std::string_view(".") : dir);
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  for (const char* name : {"python", "python3"})
    for (const auto& dir : dirs)
      if (::access((dir / name).c_str(), X_OK) == 0) return std::string(name);
  return std::nullopt;
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
