// An in-process trial built against an installed xpscale: minimises
// (x - 3)^2 by gradient steps and reports the loss each step.
#include <xpscale/xpscale.h>

#include <cmath>

namespace {

void train(xpscale::Trial& trial) {
  const double lr = trial.param<double>("lr");
  double x = 0;
  for (std::int64_t step = 0; step < 5; ++step) {
    x -= lr * 2 * (x - 3);
    const double own = (x - 3) * (x - 3);
    double loss = 0;
    // The group's mean loss, through the trial's communicator.
    trial.comm().allreduce(&own, &loss, 1, xpscale::collectives::DataType::kF64,
                           xpscale::collectives::ReduceOp::kAvg);
    if (trial.report(step, {{"loss", loss}}) == xpscale::Decision::kStop) break;
  }
}

}  // namespace

int main(int argc, char** argv) { return xpscale::run(argc, argv, train); }
