#include "xpscale/collectives/mpi_check.h"

#include <string>

namespace xpscale {
namespace detail {

void throw_mpi_error(int code, const char* call, const char* file, int line) {
  // MPI_Error_string and MPI_Error_class may themselves fail on a code that
  // is not an MPI code; the message must still be built, so fall back.
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  std::string library_message;
  if (MPI_Error_string(code, text, &length) == MPI_SUCCESS && length > 0) {
    library_message.assign(text, static_cast<std::size_t>(length));
  } else {
    library_message = "unknown MPI error code " + std::to_string(code);
  }
  int error_class = code;
  if (MPI_Error_class(code, &error_class) != MPI_SUCCESS) error_class = code;
  std::string what = std::string(file) + ":" + std::to_string(line) + ": " + call +
                     " failed: " + library_message + " (MPI error class " +
                     std::to_string(error_class) + ")";
  throw CollectiveError(what, call, code, std::move(library_message));
}

}  // namespace detail

namespace {

// The node communicator, freed on every path out (RAII instead of the
// free-before-each-return that C MPI code needs).
class NodeComm {
 public:
  explicit NodeComm(MPI_Comm comm) {
    // key 0 keeps the order of comm, so node-local ranks follow comm ranks.
    XPSCALE_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &comm_));
  }
  ~NodeComm() {
    // A destructor must not throw; a failing free leaks one communicator.
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }
  NodeComm(const NodeComm&) = delete;
  NodeComm& operator=(const NodeComm&) = delete;

  int rank() const {
    int rank = 0;
    XPSCALE_MPI_CHECK(MPI_Comm_rank(comm_, &rank));
    return rank;
  }
  int size() const {
    int size = 0;
    XPSCALE_MPI_CHECK(MPI_Comm_size(comm_, &size));
    return size;
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

}  // namespace

int node_local_rank(MPI_Comm comm) { return NodeComm(comm).rank(); }

int node_local_size(MPI_Comm comm) { return NodeComm(comm).size(); }

}  // namespace xpscale
