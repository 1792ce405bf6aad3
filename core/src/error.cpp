#include "xpscale/core/error.h"

namespace xpscale {

std::string_view category_name(ErrorCategory category) {
  switch (category) {
    case ErrorCategory::kInternal:
      return "internal";
    case ErrorCategory::kUser:
      return "user";
    case ErrorCategory::kData:
      return "data";
    case ErrorCategory::kCollective:
      return "collective";
    case ErrorCategory::kStore:
      return "store";
    case ErrorCategory::kTrial:
      return "trial";
    case ErrorCategory::kPreempted:
      return "preempted";
    case ErrorCategory::kUnavailable:
      return "unavailable";
    case ErrorCategory::kRankLost:
      return "rank lost";
  }
  return "internal";
}

int exit_status_of(ErrorCategory category) {
  switch (category) {
    case ErrorCategory::kUser:
      return kExitUsage;
    case ErrorCategory::kPreempted:
      return kExitPreempted;
    case ErrorCategory::kUnavailable:
      return kExitStoreUnavailable;
    case ErrorCategory::kRankLost:
      return kExitRankLost;
    default:
      return kExitFailure;
  }
}

int exit_status_of(const std::exception& e) {
  if (const auto* error = dynamic_cast<const Error*>(&e)) return error->exit_status();
  return kExitFailure;
}

}  // namespace xpscale
