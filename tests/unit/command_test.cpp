// External trial command lines, built the way W&B's agent builds them.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "xpscale/config/command.h"

namespace xpscale {
namespace {

using Argv = std::vector<std::string>;

SweepConfig config(const std::string& yaml) { return parse_sweep_config(yaml, "s.yaml"); }

Params params() {
  Params p;
  p["lr"] = 0.001;
  p["opt"] = "adam";
  p["layers"] = 3;
  p["bn"] = true;
  p["sizes"] = {1, 2};
  return p;
}

CommandContext context(const std::string& file = "p.json") { return {file, "python"}; }

TEST(Command, DefaultIsEnvInterpreterProgramArgsInSortedOrder) {
  const auto c = config("method: grid\nprogram: train.py\nparameters:\n  a: {value: 1}\n");
  EXPECT_EQ(build_command(c, params(), context()),
            (Argv{"/usr/bin/env", "python", "train.py", "--bn=True", "--layers=3", "--lr=0.001",
                  "--opt=adam", "--sizes=[1, 2]"}));
}

// The cases of W&B's own test of create_sweep_command_args.
TEST(Command, EveryArgsMacroAsWandbWritesIt) {
  Params p;
  p["a"] = true;
  p["b"] = false;
  p["c"] = 1;
  p["d"] = nullptr;
  auto run = [&](const std::string& macro) {
    return build_command(config("method: grid\ncommand: [\"" + macro +
                                "\"]\nparameters:\n  a: {value: 1}\n"),
                         p, context());
  };
  EXPECT_EQ(run("${args}"), (Argv{"--a=True", "--b=False", "--c=1", "--d=None"}));
  EXPECT_EQ(run("${args_no_hyphens}"), (Argv{"a=True", "b=False", "c=1", "d=None"}));
  EXPECT_EQ(run("${args_no_boolean_flags}"), (Argv{"--a", "--c=1", "--d=None"}));
  EXPECT_EQ(run("${args_json}"), (Argv{R"({"a": true, "b": false, "c": 1, "d": null})"}));
  EXPECT_EQ(run("${args_append_hydra}"), (Argv{"+a=True", "+b=False", "+c=1", "+d=None"}));
  EXPECT_EQ(run("${args_override_hydra}"), (Argv{"++a=True", "++b=False", "++c=1", "++d=None"}));
  EXPECT_EQ(run("${args_no_equals}"),
            (Argv{"--a", "True", "--b", "False", "--c", "1", "--d", "None"}));
}

TEST(Command, TextMacrosInsideWords) {
  const auto c = config(
      "method: grid\nprogram: t.py\ncommand: [\"${env}\", \"./${program}\", \"--json=${args_json}\", "
      "\"--p=${args_json_file}\", \"${interpreter}\"]\nparameters:\n  a: {value: 1}\n");
  Params p;
  p["lr"] = 0.5;
  p["name"] = "x y";
  EXPECT_EQ(build_command(c, p, context("/out/params.json")),
            (Argv{"/usr/bin/env", "./t.py", R"(--json={"lr": 0.5, "name": "x y"})",
                  "--p=/out/params.json", "python"}));
}

TEST(Command, EnvvarIsTheVariableOrItsNameAsUnderWandb) {
  ::setenv("XPSCALE_TEST_DATA_ROOT", "/data/x", 1);
  ::unsetenv("XPSCALE_TEST_UNSET");
  const auto c = config(
      "method: grid\ncommand: [run, \"--root=${envvar:XPSCALE_TEST_DATA_ROOT}/a\", "
      "\"${envvar:XPSCALE_TEST_UNSET}\", \"[${envvar:}]\"]\nparameters:\n  a: {value: 1}\n");
  EXPECT_EQ(build_command(c, Params::object(), context()),
            (Argv{"run", "--root=/data/x/a", "XPSCALE_TEST_UNSET", "[]"}));
}

TEST(Command, ValuesAreNeverExpandedAgain) {
  ::setenv("XPSCALE_TEST_SECRETISH", "no", 1);
  const auto c = config(
      "method: grid\ncommand: [run, \"${args_json}\", \"${args}\"]\nparameters:\n  a: {value: "
      "1}\n");
  Params p;
  p["evil"] = "${program}; ${envvar:XPSCALE_TEST_SECRETISH}";
  EXPECT_EQ(build_command(c, p, context()),
            (Argv{"run", R"({"evil": "${program}; ${envvar:XPSCALE_TEST_SECRETISH}"})",
                  "--evil=${program}; ${envvar:XPSCALE_TEST_SECRETISH}"}));
}

const char* kNested =
    "method: grid\ncommand: [\"${args}\", \"${args_json}\"]\nparameters:\n"
    "  optimizer:\n    parameters:\n      name: {value: adam}\n      lr: {value: 0.1}\n"
    "      layer.0: {value: [1, 2]}\n"
    "  batch: {value: 32}\n";

// W&B's service nests the run's config and sends the top level as
// {name: {value: v}}; the agent writes f"--{name}={v}" with Python's str().
TEST(Command, NestedParametersAreOneDictArgumentAsUnderWandb) {
  const auto c = config(kNested);
  Params p;
  p["optimizer.name"] = "adam";
  p["optimizer.lr"] = 0.1;
  p["optimizer.layer.0"] = {1, 2};
  p["batch"] = 32;
  EXPECT_EQ(build_command(c, p, context()),
            (Argv{"--batch=32", "--optimizer={'layer.0': [1, 2], 'lr': 0.1, 'name': 'adam'}",
                  R"({"batch": 32, "optimizer": {"layer.0": [1, 2], "lr": 0.1, "name": "adam"}})"}));
  EXPECT_EQ(nested_params(c, p).dump(),
            R"({"batch":32,"optimizer":{"layer.0":[1,2],"lr":0.1,"name":"adam"}})");
}

TEST(Command, NestedArgsDottedGivesOneArgumentPerLeafInConfigOrder) {
  const auto c = config(std::string(kNested) + "nested_args: dotted\n");
  Params p;
  p["optimizer.name"] = "adam";
  p["optimizer.lr"] = 0.1;
  p["batch"] = 32;
  EXPECT_EQ(build_command(c, p, context()),
            (Argv{"--optimizer.name=adam", "--optimizer.lr=0.1", "--batch=32",
                  R"({"optimizer.name": "adam", "optimizer.lr": 0.1, "batch": 32})"}));
}

TEST(Command, FormatsLikePythonStr) {
  using J = nlohmann::ordered_json;
  EXPECT_EQ(format_arg_value(J(false)), "False");
  EXPECT_EQ(format_arg_value(J(nullptr)), "None");
  EXPECT_EQ(format_arg_value(J(1e-05)), "1e-05");
  EXPECT_EQ(format_arg_value(J(1e16)), "1e+16");
  EXPECT_EQ(format_arg_value(J(100.0)), "100.0");
  EXPECT_EQ(format_arg_value(J("s")), "s");
  EXPECT_EQ(format_arg_value(J::parse(R"(["a", true, null, 1.5])")), "['a', True, None, 1.5]");
  EXPECT_EQ(format_arg_value(J::parse(R"(["it's", "say \"hi\"", "both '\""])")),
            R"(["it's", 'say "hi"', 'both \'"'])");
  EXPECT_EQ(format_arg_value(J::parse(R"({"k": {"n": "a\nb"}})")), R"({'k': {'n': 'a\nb'}})");
}

TEST(Command, InterpreterIsPythonWherePresentElsePython3) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("xpscale_interp_" + std::to_string(::getpid()));
  fs::create_directories(dir / "a");
  fs::create_directories(dir / "b");
  auto exe = [](const fs::path& p) {
    std::ofstream(p) << "#!/bin/sh\n";
    fs::permissions(p, fs::perms::owner_all);
  };
  exe(dir / "b" / "python3");
  EXPECT_EQ(find_interpreter((dir / "a").string() + ":" + (dir / "b").string()), "python3");
  exe(dir / "b" / "python");
  EXPECT_EQ(find_interpreter((dir / "a").string() + ":" + (dir / "b").string()), "python");
  std::ofstream(dir / "a" / "python") << "not executable\n";
  EXPECT_EQ(find_interpreter((dir / "a").string() + ":" + (dir / "b").string()), "python");
  EXPECT_EQ(find_interpreter((dir / "a").string()), std::nullopt);
  fs::remove_all(dir);
}

TEST(Command, UnknownAndMisplacedMacrosAreConfigErrors) {
  auto error = [](const std::string& words) {
    try {
      config("method: grid\nprogram: t.py\ncommand: [" + words + "]\nparameters:\n  a: {value: 1}\n");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(error("\"${args_no_boolean_flag}\"").find("did you mean '${args_no_boolean_flags}'"),
            std::string::npos);
  EXPECT_NE(error("\"--x=${args_no_equals}\"").find("must be a word of its own"),
            std::string::npos);
  EXPECT_NE(error("\"${envvar:lower}\"").find("capital letters"), std::string::npos);
  EXPECT_EQ(error("\"${envvar:HOME}\", \"${args_append_hydra}\", \"${args_override_hydra}\""),
            "accepted");
}

TEST(Command, ShellQuoteForDisplay) {
  EXPECT_EQ(shell_quote("--lr=0.1"), "--lr=0.1");
  EXPECT_EQ(shell_quote("a b"), "'a b'");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(shell_quote(""), "''");
}

}  // namespace
}  // namespace xpscale
