// The no-op trainer of bench/dispatch.
//
//   dispatch_noop --sweep cfg.yaml [...]   a sweep through xpscale::run: each
//       trial does nothing, or sleeps for its parameter `ms` (milliseconds)
//       when the sweep has one, so the sweep measures dispatch and nothing
//       else.
//   dispatch_noop --once [MS]              the same trial outside xpscale, for
//       the one-mpirun-per-trial baseline: MPI_Init, the trial, MPI_Finalize.
#include <mpi.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "xpscale/trial/run.h"

namespace {

void sleep_ms(int ms) {
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

void train(xpscale::Trial& trial) {
  if (trial.has_param("ms")) sleep_ms(trial.param<int>("ms"));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--once") == 0) {
    MPI_Init(&argc, &argv);
    sleep_ms(argc >= 3 ? std::atoi(argv[2]) : 0);
    MPI_Finalize();
    return 0;
  }
  return xpscale::run(argc, argv, train);
}
