// libFuzzer entry point for the sweep-config loader (built with clang when
// XPSCALE_FUZZ=ON; scripts/test runs it for a bounded time).
#include <cstddef>
#include <cstdint>
#include <string>

#include "config_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  xpscale::fuzz::check_config_text(std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}
