#pragma once
// What the S3 integration tests share: the fixture's state (s3_server.py
// writes the server's and proxies' ports and logs under $XPSCALE_S3_STATE)
// and the message of an expected ShardingError.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>

#include "xpscale/sharding/error.h"

namespace xpscale::test {

inline std::string state_dir() {
  const char* dir = std::getenv("XPSCALE_S3_STATE");
  if (dir == nullptr) throw std::runtime_error("XPSCALE_S3_STATE is not set (run through ctest)");
  return dir;
}

// The first line of the fixture's file `name` (e.g. "endpoint").
inline std::string state_file(const std::string& name) {
  std::ifstream in(state_dir() + "/" + name);
  std::string text;
  std::getline(in, text);
  if (text.empty()) throw std::runtime_error(state_dir() + "/" + name + " is empty");
  return text;
}

// The message of the ShardingError that f throws (fails the test if none).
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
