// External trial command lines, built the W&B way.
#include <gtest/gtest.h>

#include "xpscale/config/command.h"

namespace xpscale {
namespace {

using Argv = std::vector<std::string>;

SweepConfig config(const std::string& yaml) { return parse_sweep_config(yaml, "s.yaml"); }

Params params() {
  Params p;
  p["lr"] = 0.001;
  p["opt.name"] = "adam";
  p["layers"] = 3;
  p["bn"] = true;
  p["sizes"] = {1, 2};
  return p;
}

TEST(Command, DefaultIsEnvInterpreterProgramArgs) {
  const auto c = config("method: grid\nprogram: train.py\nparameters:\n  a: {value: 1}\n");
  EXPECT_EQ(build_command(c, params(), "p.json"),
            (Argv{"/usr/bin/env", "python3", "train.py", "--lr=0.001", "--opt.name=adam",
                  "--layers=3", "--bn=True", "--sizes=[1,2]"}));
}

TEST(Command, ArgsNoHyphensAndJsonForms) {
  const auto c = config(
      "method: grid\nprogram: t.py\ncommand: [\"${env}\", \"${program}\", \"${args_no_hyphens}\", "
      "\"--json=${args_json}\", \"${args_json_file}\"]\nparameters:\n  a: {value: 1}\n");
  Params p;
  p["lr"] = 0.5;
  p["name"] = "x y";
  EXPECT_EQ(build_command(c, p, "/out/params.json"),
            (Argv{"/usr/bin/env", "t.py", "lr=0.5", "name=x y", R"(--json={"lr":0.5,"name":"x y"})",
                  "/out/params.json"}));
}

TEST(Command, ValuesAreNeverExpandedAgain) {
  const auto c = config(
      "method: grid\ncommand: [run, \"${args_json}\", \"${args}\"]\nparameters:\n  a: {value: "
      "1}\n");
  Params p;
  p["evil"] = "${program}; rm -rf /";
  EXPECT_EQ(build_command(c, p, "f"),
            (Argv{"run", R"({"evil":"${program}; rm -rf /"})", "--evil=${program}; rm -rf /"}));
}

TEST(Command, ShellQuoteForDisplay) {
  EXPECT_EQ(shell_quote("--lr=0.1"), "--lr=0.1");
  EXPECT_EQ(shell_quote("a b"), "'a b'");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(shell_quote(""), "''");
}

TEST(Command, FormatsLikeWandb) {
  EXPECT_EQ(format_arg_value(nlohmann::ordered_json(false)), "False");
  EXPECT_EQ(format_arg_value(nlohmann::ordered_json(nullptr)), "None");
  EXPECT_EQ(format_arg_value(nlohmann::ordered_json(1e-05)), "1e-05");
  EXPECT_EQ(format_arg_value(nlohmann::ordered_json("s")), "s");
}

}  // namespace
}  // namespace xpscale
