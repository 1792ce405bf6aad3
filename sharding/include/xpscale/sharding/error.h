#pragma once
// The error of the sharding library: a dataset address, a shard pattern or
// (later) a shard that cannot be read. Its message always names the input
// at fault (the URL, the pattern and the offset in it).
//
// It is an xpscale::Error of category kData (core/error.h: exit status 1);
// the runtime turns one raised by user input (a shard URL in a config) into
// a user error (exit status 2).
#include <string>

#include "xpscale/core/error.h"

namespace xpscale {

class ShardingError : public Error {
 public:
  explicit ShardingError(const std::string& what) : Error(what, ErrorCategory::kData) {}
};

// The object does not exist (HTTP 404, ENOENT), as opposed to one that
// exists but cannot be read (denied, unreachable, faults beyond the
// retries): callers that probe for optional objects (index sidecars) catch
// only this one, so that the other errors still reach the user.
class ObjectNotFound : public ShardingError {
 public:
  using ShardingError::ShardingError;
};

}  // namespace xpscale
