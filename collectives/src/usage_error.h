#pragma once
// Errors that no C library reported: a misuse of the API (overlapping
// buffers, a count beyond MPI's int, an unknown backend) or a timeout.
// They are CollectiveErrors like the library failures, with code 0.
#include <string>

#include "xpscale/collectives/error.h"

namespace xpscale::collectives::detail {

// Throws CollectiveError("<where>: <message>", where, 0, message).
[[noreturn]] inline void throw_usage_error(const std::string& where, const std::string& message) {
  throw CollectiveError(where + ": " + message, where, 0, message);
}

}  // namespace xpscale::collectives::detail
