// An in-process trainer for the sweep runtime's tests: its behaviour comes
// from the trial's parameters.
//   mode    throw | throw_rank1 | sleep_forever_rank1, anything else: ok
//   ms      how long each step sleeps
//   steps   how many steps it reports (default 3)
//   x       the reported "loss" is (x - 3)^2 + step / 100
//   checkpoint  0: never says checkpoint_saved() (a retry starts at step 1)
// It also reports the leader's node-local rank ("local_rank").
// Every step checks the group's communicator: the allreduce of the group
// ranks must equal size*(size-1)/2 on every rank.
#include <chrono>
#include <stdexcept>
#include <thread>

#include "xpscale/trial/run.h"

namespace {

void train(xpscale::Trial& trial) {
  const std::string mode = trial.has_param("mode") ? trial.param<std::string>("mode") : "ok";
  const int ms = trial.has_param("ms") ? trial.param<int>("ms") : 0;
  const int steps = trial.has_param("steps") ? trial.param<int>("steps") : 3;
  const double x = trial.has_param("x") ? trial.param<double>("x") : 0.0;
  const bool checkpoint = !trial.has_param("checkpoint") || trial.param<int>("checkpoint") != 0;
  if (mode == "throw")
    throw std::runtime_error("trial asked to throw (x=" + std::to_string(x) + ")");
  const int first = trial.resume_step() >= 1 ? static_cast<int>(trial.resume_step()) + 1 : 1;
  for (int step = first; step <= steps; ++step) {
    if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    std::int64_t r = trial.group_rank();
    trial.comm().allreduce(&r, &r, 1, xpscale::collectives::DataType::kI64,
                           xpscale::collectives::ReduceOp::kSum);
    const std::int64_t n = trial.group_size();
    if (r != n * (n - 1) / 2) throw std::runtime_error("group allreduce gave " + std::to_string(r));
    if (mode == "throw_rank1" && trial.group_rank() == 1 && step == 2)
      throw std::runtime_error("rank 1 fails at step 2");
    if (mode == "sleep_forever_rank1" && trial.group_rank() == 1)
      std::this_thread::sleep_for(std::chrono::hours(1));
    const double loss = (x - 3) * (x - 3) + step / 100.0;
    if (checkpoint) trial.checkpoint_saved(step);
    const nlohmann::json metrics{
        {"loss", loss}, {"rank_sum", r}, {"local_rank", trial.local_rank()}};
    if (trial.report(step, metrics) == xpscale::Decision::kStop) break;
  }
}

}  // namespace

int main(int argc, char** argv) { return xpscale::run(argc, argv, train); }
