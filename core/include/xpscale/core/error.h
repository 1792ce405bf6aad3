#pragma once
// The one exception family of xpscale (design.md, "Errors").
//
// Every error xpscale throws derives from xpscale::Error. An Error carries a
// category, and the category alone decides the exit status that the
// command line (launcher/src/main.cpp) and xpscale::run() trainers return
// for it (exit_status_of below): that mapping lives here and nowhere else.
//
// The libraries keep their own subclasses where they carry information a
// caller can use:
//   UserError        (core)        bad input: flags, files, names  -> 2
//   ConfigError      (config)      a UserError with file:line:col diagnostics
//   ShardingError    (sharding)    data that cannot be read; names the URL
//                                  and offset                    -> 1
//   ObjectNotFound   (sharding)    a ShardingError for a missing object
//   CollectiveError  (collectives) a failed MPI/NCCL/CUDA call, with the
//                                  call, code and library message -> 1
//   StoreError       (store)       the store cannot be read or written -> 1
//   TrialError, TrialFailed (trial) a train function's failures   -> 1
//   TrialPreempted   (coordinator) a trial ended by preemption    -> 3
//   StoreUnavailable (store)       transient store errors outlasted
//                                  --store-retry                   -> 4
//   RankLost         (coordinator) a rank died or hung             -> 5
// Library code that turns an error caused by user input into a user error
// (a shard URL in a config) rethrows it as UserError/ConfigError.
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

namespace xpscale {

// Exit statuses of the xpscale command and of xpscale::run() trainers
// (README, "Exit statuses").
constexpr int kExitOk = 0;                // the sweep ran (some trials may have failed)
constexpr int kExitFailure = 1;           // an internal or I/O error, or max_failures passed
constexpr int kExitUsage = 2;             // a user error: flags, config, files, credentials
constexpr int kExitPreempted = 3;         // preempted (SIGUSR1): run it again to resume
constexpr int kExitStoreUnavailable = 4;  // the store stayed busy/full/failing past --store-retry
constexpr int kExitRankLost = 5;          // a rank died or hung: run it again to resume

enum class ErrorCategory {
  kInternal,     // a broken invariant or a failure of a system call
  kUser,         // the user's input is wrong
  kData,         // data (a shard, an object, a URL) cannot be read
  kCollective,   // a communicator call failed
  kStore,        // the store cannot be opened, read or written
  kTrial,        // a trial failed (recorded; the sweep goes on)
  kPreempted,    // work ended early because the job is being preempted
  kUnavailable,  // the store stayed unavailable past the run's --store-retry
  kRankLost,     // a rank of the job died or stopped answering
};

// "internal", "user", "data", "collective", "store", "trial", "preempted",
// "unavailable", "rank lost".
std::string_view category_name(ErrorCategory category);
// The exit status for an error of `category`: kExitUsage for kUser,
// kExitPreempted for kPreempted, kExitFailure for every other.
int exit_status_of(ErrorCategory category);

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, ErrorCategory category = ErrorCategory::kInternal)
      : std::runtime_error(what), category_(category) {}
  ErrorCategory category() const noexcept { return category_; }
  int exit_status() const noexcept { return exit_status_of(category_); }

 private:
  ErrorCategory category_;
};

class UserError : public Error {
 public:
  explicit UserError(const std::string& what) : Error(what, ErrorCategory::kUser) {}
};

// The exit status for any exception: an Error's category decides;
// anything else (std::bad_alloc, a library's own exception) is a failure.
int exit_status_of(const std::exception& e);

}  // namespace xpscale
