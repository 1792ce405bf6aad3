#pragma once
// xpscale, all of it: include this and link xpscale::xpscale.
//
//   #include <xpscale/xpscale.h>
//
//   void train(xpscale::Trial& trial) {
//     const double lr = trial.param<double>("lr");
//     for (std::int64_t epoch = trial.resume_step() + 1; epoch < 10; ++epoch) {
//       ... trial.comm().allreduce(...), trial.loader("train") ...
//       if (trial.report(epoch, {{"loss", loss}}) == xpscale::Decision::kStop) break;
//     }
//   }
//   int main(int argc, char** argv) { return xpscale::run(argc, argv, train); }
//
// and `mpirun -n 8 ./trainer --sweep sweep.yaml`. The parts, each with its
// own header folder (docs/architecture.md):
#include "xpscale/collectives/bucketer.h"      // GradientBucketer
#include "xpscale/collectives/communicator.h"  // Communicator
#include "xpscale/config/sweep_config.h"       // SweepConfig, load_sweep_config
#include "xpscale/core/error.h"                // Error, UserError, exit statuses
#include "xpscale/schedule/scheduler.h"        // Scheduler, make_scheduler
#include "xpscale/search/searcher.h"           // Searcher, make_searcher
#include "xpscale/sharding/loader.h"           // ShardedLoader
#include "xpscale/store/store.h"               // Store, open_store
#include "xpscale/trial/run.h"                 // run, run_sweep
#include "xpscale/trial/trial.h"               // Trial
