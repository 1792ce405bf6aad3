#pragma once
// The error of the sharding library: a dataset address, a shard pattern or
// (later) a shard that cannot be read. Its message always names the input
// at fault (the URL, the pattern and the offset in it).
//
// It derives std::runtime_error directly, not xpscale::Error, because
// sharding does not know the runtime (design.md, "Layout"); the runtime
// turns one raised by user input into a user error (exit status 2).
#include <stdexcept>

namespace xpscale {

class ShardingError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
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
