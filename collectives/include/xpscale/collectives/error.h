#pragma once
// The error that every checked C call of collectives throws: MPI, CUDA and
// NCCL failures all become a CollectiveError carrying where it failed, the
// call's text, the library's code and the library's own message.
//
// It is an xpscale::Error of category kCollective (core/error.h: exit
// status 1); the runtime catches it at its boundary and adds the trial's
// context.
//
// Header-only on purpose: the optional CUDA/NCCL target throws it too, and a
// constructor defined in xpscale_collectives would make the two static
// libraries depend on each other.
#include <string>
#include <utility>

#include "xpscale/core/error.h"

namespace xpscale {

class CollectiveError : public Error {
 public:
  // what: the full message, conventionally
  //   "file:line: <call> failed: <library message> (<library> error N)".
  // call: the source text of the failing call, e.g. "MPI_Send(...)".
  // code: the library's return code (MPI error code, cudaError_t,
  //   ncclResult_t) as an int.
  // library_message: the library's description of code.
  CollectiveError(const std::string& what, std::string call, int code, std::string library_message)
      : Error(what, ErrorCategory::kCollective),
        call_(std::move(call)),
        code_(code),
        library_message_(std::move(library_message)) {}

  const std::string& call() const noexcept { return call_; }
  int code() const noexcept { return code_; }
  const std::string& library_message() const noexcept { return library_message_; }

 private:
  std::string call_;
  int code_;
  std::string library_message_;
};

}  // namespace xpscale
