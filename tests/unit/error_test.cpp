// One error model (core/error.h): every library's errors are xpscale::Error
// with a category, and the category alone decides the exit status.
#include <gtest/gtest.h>

#include <new>
#include <stdexcept>

#include "xpscale/collectives/error.h"
#include "xpscale/config/diagnostics.h"
#include "xpscale/coordinator/preemption.h"
#include "xpscale/core/error.h"
#include "xpscale/sharding/error.h"
#include "xpscale/store/store.h"
#include "xpscale/trial/trial.h"

namespace xpscale {
namespace {

TEST(ErrorModel, ExitStatusesAreTheDocumentedOnes) {
  EXPECT_EQ(kExitOk, 0);
  EXPECT_EQ(kExitFailure, 1);
  EXPECT_EQ(kExitUsage, 2);
  EXPECT_EQ(kExitPreempted, 3);
}

TEST(ErrorModel, UserErrorsExitWithTwo) {
  EXPECT_EQ(exit_status_of(UserError("bad flag")), kExitUsage);
  const ConfigError config(
      {Diagnostic({"s.yaml", 3, 7}, "parameters.lr.min", "expected a number")});
  EXPECT_EQ(config.category(), ErrorCategory::kUser);
  EXPECT_EQ(exit_status_of(config), kExitUsage);
  EXPECT_EQ(std::string(config.what()), "s.yaml:3:7: parameters.lr.min: expected a number");
}

TEST(ErrorModel, EachLibrarysErrorsCarryTheirCategory) {
  EXPECT_EQ(ShardingError("s3://b/x.tar: 403").category(), ErrorCategory::kData);
  EXPECT_EQ(ObjectNotFound("s3://b/x.tar: 404").category(), ErrorCategory::kData);
  EXPECT_EQ(CollectiveError("f:1: MPI_Send failed", "MPI_Send(...)", 5, "msg").category(),
            ErrorCategory::kCollective);
  EXPECT_EQ(StoreError("store x.db: locked").category(), ErrorCategory::kStore);
  EXPECT_EQ(TrialPreempted("preempted").category(), ErrorCategory::kPreempted);
  EXPECT_EQ(TrialError("no parameter 'lr'").category(), ErrorCategory::kTrial);
  EXPECT_EQ(TrialFailed("exit 1", "tail").category(), ErrorCategory::kTrial);
  EXPECT_EQ(Error("invariant").category(), ErrorCategory::kInternal);
}

TEST(ErrorModel, AllButUserAndPreemptedErrorsExitWithOne) {
  EXPECT_EQ(exit_status_of(ShardingError("x")), kExitFailure);
  EXPECT_EQ(exit_status_of(CollectiveError("x", "c", 1, "m")), kExitFailure);
  EXPECT_EQ(exit_status_of(StoreError("x")), kExitFailure);
  EXPECT_EQ(exit_status_of(TrialFailed("x", "tail")), kExitFailure);
  EXPECT_EQ(exit_status_of(TrialPreempted("x")), kExitPreempted);
  EXPECT_EQ(exit_status_of(std::runtime_error("not ours")), kExitFailure);
  EXPECT_EQ(exit_status_of(std::bad_alloc()), kExitFailure);
}

TEST(ErrorModel, OneCatchOfErrorSeesEveryLibrarysErrors) {
  auto caught = [](auto&& thrower) {
    try {
      thrower();
    } catch (const Error& e) {
      return std::string(category_name(e.category()));
    } catch (...) {
    }
    return std::string("not an xpscale::Error");
  };
  EXPECT_EQ(caught([] { throw ShardingError("x"); }), "data");
  EXPECT_EQ(caught([] { throw CollectiveError("x", "c", 1, "m"); }), "collective");
  EXPECT_EQ(caught([] { throw StoreError("x"); }), "store");
  EXPECT_EQ(caught([] { throw UserError("x"); }), "user");
}

}  // namespace
}  // namespace xpscale
