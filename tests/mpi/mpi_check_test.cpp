// XPSCALE_MPI_CHECK turns a failing MPI call into a CollectiveError that
// says where, what and why.
#include <mpi.h>

#include <gtest/gtest.h>

#include <string>

#include "xpscale/collectives/mpi_check.h"

namespace xpscale {
namespace {

// A duplicate of MPI_COMM_WORLD whose errors are returned, not fatal.
class ReturningComm {
 public:
  ReturningComm() {
    XPSCALE_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
    XPSCALE_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  }
  ~ReturningComm() { MPI_Comm_free(&comm_); }
  ReturningComm(const ReturningComm&) = delete;
  ReturningComm& operator=(const ReturningComm&) = delete;
  MPI_Comm get() const { return comm_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, static_cast<std::size_t>(length));
}

TEST(MpiCheck, SuccessfulCallDoesNotThrow) {
  ReturningComm comm;
  EXPECT_NO_THROW(XPSCALE_MPI_CHECK(MPI_Barrier(comm.get())));
}

TEST(MpiCheck, FailingCallThrowsWithCallTextAndMpiMessage) {
  ReturningComm comm;
  int size = 0;
  XPSCALE_MPI_CHECK(MPI_Comm_size(comm.get(), &size));
  const int value = 42;
  try {
    XPSCALE_MPI_CHECK(MPI_Send(&value, 1, MPI_INT, size + 5, 0, comm.get()));
    FAIL() << "MPI_Send to rank " << size + 5 << " did not throw";
  } catch (const CollectiveError& e) {
    int error_class = 0;
    MPI_Error_class(e.code(), &error_class);
    EXPECT_EQ(error_class, MPI_ERR_RANK);
    const std::string message = e.what();
    EXPECT_EQ(e.call(), "MPI_Send(&value, 1, MPI_INT, size + 5, 0, comm.get())");
    EXPECT_EQ(e.library_message(), mpi_error_string(e.code()));
    EXPECT_NE(message.find("mpi_check_test.cpp:"), std::string::npos) << message;
    EXPECT_NE(message.find(": MPI_Send(&value, 1, MPI_INT, size + 5, 0, comm.get()) failed: " +
                           mpi_error_string(e.code())),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("(MPI error class " + std::to_string(MPI_ERR_RANK) + ")"),
              std::string::npos)
        << message;
  }
}

}  // namespace
}  // namespace xpscale
