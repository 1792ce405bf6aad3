#pragma once
// A duplicate of a caller's communicator, owned and freed by us, whose
// errors are returned (and so turned into CollectiveError by
// XPSCALE_MPI_CHECK) instead of aborting the job.
#include <mpi.h>

#include "xpscale/collectives/mpi_check.h"

namespace xpscale::collectives::detail {

class OwnedComm {
 public:
  // Collective over parent, like MPI_Comm_dup.
  explicit OwnedComm(MPI_Comm parent) {
    XPSCALE_MPI_CHECK(MPI_Comm_dup(parent, &comm_));
    XPSCALE_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  }
  ~OwnedComm() {
    // After MPI_Finalize nothing may be freed (a communicator destroyed late,
    // e.g. by a static); a destructor must not throw, so errors are dropped.
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (comm_ != MPI_COMM_NULL && finalized == 0) MPI_Comm_free(&comm_);
  }
  OwnedComm(const OwnedComm&) = delete;
  OwnedComm& operator=(const OwnedComm&) = delete;

  MPI_Comm get() const { return comm_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

}  // namespace xpscale::collectives::detail
