#pragma once
// What the Azure tests share: the fixture's state (azurite_server.py writes
// the endpoint, account and key under $XPSCALE_AZURE_STATE), the SDK
// script (azure_sdk_signer.js) and the message of an expected
// ShardingError.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "xpscale/sharding/error.h"

namespace xpscale::test {

inline std::string azure_state_dir() {
  const char* dir = std::getenv("XPSCALE_AZURE_STATE");
  if (dir == nullptr)
    throw std::runtime_error("XPSCALE_AZURE_STATE is not set (run through ctest)");
  return dir;
}

// The first line of the fixture's file `name` ("endpoint", "account", "key").
inline std::string azure_state(const std::string& name) {
  std::ifstream in(azure_state_dir() + "/" + name);
  std::string text;
  std::getline(in, text);
  if (text.empty()) throw std::runtime_error(azure_state_dir() + "/" + name + " is empty");
  return text;
}

// Runs azure_sdk_signer.js (@azure/storage-blob) on cases, one Node start-up.
inline nlohmann::json azure_sdk(const nlohmann::json& cases) {
  const std::string stem = testing::TempDir() + "/azure_sdk_" +
                           testing::UnitTest::GetInstance()->current_test_info()->name() + "_" +
                           std::to_string(::getpid());
  const std::string input = stem + "_in.json";
  const std::string output = stem + "_out.json";
  std::ofstream(input) << cases.dump();
  const std::string command = std::string("cd ") + XPSCALE_AZURE_DIR +
                              " && node azure_sdk_signer.js < " + input + " > " + output;
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  nlohmann::json out = nlohmann::json::parse(std::ifstream(output));
  std::remove(input.c_str());
  std::remove(output.c_str());
  return out;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const ShardingError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ShardingError";
  return "";
}

}  // namespace xpscale::test
