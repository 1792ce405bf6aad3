#pragma once
// What unit tests of the Trial API need without mpiexec: a communicator over
// MPI_COMM_SELF of a singleton MPI process, and a channel that answers every
// report with Continue. A test file registers the environment once:
//   const auto* const kMpiSelf = ::testing::AddGlobalTestEnvironment(new test::MpiSelf);
#include <gtest/gtest.h>
#include <mpi.h>

#include <memory>
#include <string>

#include "xpscale/trial/trial.h"

namespace xpscale::test {

class MpiSelf : public ::testing::Environment {
 public:
  void SetUp() override {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    collectives::Options o;
    o.backend = "mpi";
    comm = collectives::make_communicator(MPI_COMM_SELF, o);
  }
  void TearDown() override {
    comm.reset();
    MPI_Finalize();
  }
  static inline std::unique_ptr<collectives::Communicator> comm;
};

class NoChannel : public detail::TrialChannel {
 public:
  Decision report(std::int64_t, const nlohmann::json&, std::string&) override {
    return Decision::kContinue;
  }
  Decision report_as_leader(std::int64_t, const nlohmann::json&, std::string&) override {
    return Decision::kContinue;
  }
};

}  // namespace xpscale::test
