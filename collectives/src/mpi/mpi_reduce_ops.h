#pragma once
// How the MPI backend maps DataType and ReduceOp onto MPI: built-in types
// and ops where MPI has them; for f16 and bf16, which MPI-3 lacks, 16-bit
// words (MPI_UINT16_T) with user-defined ops that widen to float, reduce,
// and round back to nearest even. avg is reduced as sum and scaled after.
#include <mpi.h>

#include <cstddef>

#include "xpscale/collectives/communicator.h"

namespace xpscale::collectives::detail {

MPI_Datatype mpi_datatype(DataType type);

// The MPI op that reduces `type` for `op` (avg: the sum). The user-defined
// ops are created on first use and live until the process ends.
MPI_Op mpi_op(DataType type, ReduceOp op);

// data[i] /= divisor for count elements: the second half of avg. Integer
// types truncate toward zero; f16/bf16 divide in float and round to even.
void divide_in_place(void* data, std::size_t count, DataType type, int divisor);

}  // namespace xpscale::collectives::detail
