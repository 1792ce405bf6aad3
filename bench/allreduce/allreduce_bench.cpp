// Allreduce benchmark (run under mpiexec; see run.sh). For each message size
// it times our Communicator::allreduce and, for the MPI backend, raw
// MPI_Allreduce on the same buffers, alternating them in rounds so that
// both see the same machine load, and reports the median round. Then it
// times 200 gradient tensors of 16 KiB reduced one by one against the same
// tensors through the GradientBucketer.
//
// The overhead against raw MPI is the median over rounds of the paired
// ratio ours / raw, each pair timed in the same round: on a shared machine
// the load drifts from round to round by far more than the few percent
// being measured, and a ratio of two separate medians picks up that drift.
// Both estimates are printed: overhead_vs_raw_mpi (paired) and
// overhead_of_medians, with the quartiles of the paired ratios
// (overhead_q1, overhead_q3). With the MPI backend a third body, raw
// MPI_Allreduce again on a second duplicate communicator, is timed the same
// way: its ratio to raw (control_vs_raw_mpi) is what identical code
// measures here, the noise floor any overhead must be read against.
//
// Output: an nccl-tests-like table on stderr of rank 0 and, on stdout, one
// JSON line per row and a summary line last:
//   {"bench":"allreduce","backend":...,"ranks":N,"groups":G,
//    "overhead_vs_raw_mpi_at_4MiB":r1,"overhead_vs_raw_mpi_at_64MiB":r2,
//    "bucketed_vs_per_tensor_speedup":s,"time_us_at_4MiB":t,
//    "control_vs_raw_mpi_at_4MiB":c}
// busbw = algbw * 2(n-1)/n as in nccl-tests (n: ranks of a group).
//
//   mpiexec -n 4 allreduce_bench [--backend auto|mpi|nccl] [--groups G]
//       [--min-bytes 4096] [--max-bytes 67108864] [--rounds 15] [--quick]
//
// --rounds is the least number of rounds per size; small and mid sizes get
// more (see time_alternating). --quick: up to 1 MiB, exactly 3 rounds.
//
// --groups G splits the job into G groups (rank % G) that all reduce at the
// same time, as G trials of a sweep do; times are the slowest group's.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "xpscale/collectives/bucketer.h"
#include "xpscale/collectives/communicator.h"

namespace {

using xpscale::collectives::Communicator;
using xpscale::collectives::DataType;
using xpscale::collectives::ReduceOp;

struct Args {
  std::string backend = "auto";
  int groups = 1;
  std::size_t min_bytes = 4096;
  std::size_t max_bytes = std::size_t{64} << 20;
  int rounds = 15;
  bool quick = false;
};

Args parse(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "allreduce_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--backend") {
      args.backend = next();
    } else if (a == "--groups") {
      args.groups = std::stoi(next());
    } else if (a == "--min-bytes") {
      args.min_bytes = std::stoull(next());
    } else if (a == "--max-bytes") {
      args.max_bytes = std::stoull(next());
    } else if (a == "--rounds") {
      args.rounds = std::stoi(next());
    } else if (a == "--quick") {
      args.quick = true;
    } else {
      std::fprintf(stderr, "allreduce_bench: unknown argument %s\n", a.c_str());
      std::exit(2);
    }
  }
  if (args.quick) {
    args.min_bytes = 4096;
    args.max_bytes = std::size_t{1} << 20;
    args.rounds = 3;
  }
  return args;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Runs each body `iters` times per round, alternating bodies within the
// round and rotating which body goes first from round to round (so that
// none always runs right after the barrier or right after another); returns
// each body's samples, one per round in round order, of the slowest rank's
// time per call, in seconds. Every rank of the job takes part (world
// barrier), so that concurrent groups start together.
//
// At least `rounds` rounds; then more, up to 4 x rounds, while the timed
// calls have taken less than `budget_s` in all: at 4 MiB a round is two
// calls of each body, and 15 of them left the median at the mercy of a few
// descheduled ranks. Every rank sees the same (slowest) samples, so all
// stop after the same round.
std::vector<std::vector<double>> time_alternating(const std::vector<std::function<void()>>& bodies,
                                                  int iters, int rounds, double budget_s = 0) {
  std::vector<std::vector<double>> samples(bodies.size());
  for (std::function<void()> const& body : bodies) body();  // warm-up
  double spent = 0;
  for (int r = 0; r < rounds || (spent < budget_s && r < 4 * rounds); ++r) {
    for (std::size_t k = 0; k < bodies.size(); ++k) {
      const std::size_t b = (k + static_cast<std::size_t>(r)) % bodies.size();
      MPI_Barrier(MPI_COMM_WORLD);
      const double start = now_s();
      for (int i = 0; i < iters; ++i) bodies[b]();
      const double mine = (now_s() - start) / iters;
      double slowest = 0;
      MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      samples[b].push_back(slowest);
      spent += slowest * iters;
    }
  }
  return samples;
}

// The q-quantile (0 <= q <= 1) of v, nearest rank; q = 0.5 is the median
// the bench has always reported (the upper one for an even count).
double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(q * static_cast<double>(v.size()));
  return v[std::min(i, v.size() - 1)];
}

// a[r] / b[r] for every round r.
std::vector<double> paired_ratios(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> ratios;
  for (std::size_t r = 0; r < a.size() && r < b.size(); ++r) ratios.push_back(a[r] / b[r]);
  return ratios;
}

std::string json_number(double v) {
  char text[64];
  std::snprintf(text, sizeof text, "%.6g", v);
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  const Args args = parse(argc, argv);
  int world_rank = 0;
  int world_size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  const bool printer = world_rank == 0;
  int status = 0;
  try {
    MPI_Comm group = MPI_COMM_NULL;
    MPI_Comm_split(MPI_COMM_WORLD, world_rank % args.groups, world_rank, &group);
    xpscale::collectives::Options options;
    options.backend = args.backend;
    auto comm = xpscale::collectives::make_communicator(group, options);
    const bool raw_mpi = comm->backend() == "mpi";
    // The baseline runs on its own duplicate so that it never matches ours;
    // the control (raw again) on another one.
    MPI_Comm raw = MPI_COMM_NULL;
    MPI_Comm_dup(group, &raw);
    MPI_Comm control = MPI_COMM_NULL;
    if (raw_mpi) MPI_Comm_dup(group, &control);
    const int n = comm->size();
    const std::string head =
        "{\"bench\":\"allreduce\",\"backend\":\"" + std::string(comm->backend()) +
        "\",\"ranks\":" + std::to_string(world_size) +
        ",\"groups\":" + std::to_string(args.groups) + ",\"group_ranks\":" + std::to_string(n);
    if (printer) {
      std::fprintf(
          stderr,
          "# xpscale allreduce: backend %s, %d ranks, %d group(s) of %d, f32 sum, "
          "median of >= %d rounds (overhead, control: median of paired per-round ratios)\n",
          std::string(comm->backend()).c_str(), world_size, args.groups, n, args.rounds);
      std::fprintf(stderr, "#%12s %12s %6s %10s %8s %8s %10s %8s %8s %9s %8s\n", "size(B)", "count",
                   "type", "time(us)", "algbw", "busbw", "mpi(us)", "algbw", "busbw", "overhead",
                   "control");
    }

    double overhead_4m = -1;
    double control_4m = -1;
    double overhead_64m = -1;
    double time_4m = -1;
    for (std::size_t bytes = args.min_bytes; bytes <= args.max_bytes; bytes *= 4) {
      const std::size_t count = bytes / sizeof(float);
      Communicator::Buffer send = comm->allocate(bytes);
      Communicator::Buffer recv = comm->allocate(bytes);
      std::vector<float> host(count, 1.0F + static_cast<float>(comm->rank()));
      comm->copy(send.get(), host.data(), bytes);
      comm->synchronize();
      std::vector<std::function<void()>> bodies = {
          [&] { comm->allreduce(send.get(), recv.get(), count, DataType::kF32, ReduceOp::kSum); }};
      if (raw_mpi) {
        bodies.emplace_back([&] {
          MPI_Allreduce(send.get(), recv.get(), static_cast<int>(count), MPI_FLOAT, MPI_SUM, raw);
        });
        bodies.emplace_back([&] {
          MPI_Allreduce(send.get(), recv.get(), static_cast<int>(count), MPI_FLOAT, MPI_SUM,
                        control);
        });
      }
      // About 40 ms of work per body and round, at least 2 calls; rounds
      // beyond --rounds while a size has taken less than this:
      constexpr double kBudgetPerSize = 6.0;  // seconds, all bodies together
      const int iters = static_cast<int>(std::clamp<std::size_t>(
          (std::size_t{64} << 20) / std::max<std::size_t>(bytes, 1) / 8, 2, 200));
      const std::vector<std::vector<double>> samples =
          time_alternating(bodies, iters, args.rounds, args.quick ? 0.0 : kBudgetPerSize);
      std::vector<double> t;
      for (const std::vector<double>& s : samples) t.push_back(quantile(s, 0.5));
      const double algbw = static_cast<double>(bytes) / t[0] / 1e9;
      const double busbw = algbw * 2.0 * (n - 1) / n;
      std::string row = head + ",\"size_bytes\":" + std::to_string(bytes) +
                        ",\"count\":" + std::to_string(count) +
                        ",\"dtype\":\"f32\",\"rounds\":" + std::to_string(samples[0].size()) +
                        ",\"time_us\":" + json_number(t[0] * 1e6) +
                        ",\"algbw_GBps\":" + json_number(algbw) +
                        ",\"busbw_GBps\":" + json_number(busbw);
      double overhead = -1;
      double control_ratio = -1;
      if (raw_mpi) {
        const std::vector<double> ratios = paired_ratios(samples[0], samples[1]);
        overhead = quantile(ratios, 0.5);
        control_ratio = quantile(paired_ratios(samples[2], samples[1]), 0.5);
        const double raw_algbw = static_cast<double>(bytes) / t[1] / 1e9;
        row += ",\"raw_mpi_time_us\":" + json_number(t[1] * 1e6) +
               ",\"raw_mpi_busbw_GBps\":" + json_number(raw_algbw * 2.0 * (n - 1) / n) +
               ",\"overhead_vs_raw_mpi\":" + json_number(overhead) +
               ",\"overhead_q1\":" + json_number(quantile(ratios, 0.25)) +
               ",\"overhead_q3\":" + json_number(quantile(ratios, 0.75)) +
               ",\"overhead_of_medians\":" + json_number(t[0] / t[1]) +
               ",\"control_vs_raw_mpi\":" + json_number(control_ratio);
        if (printer) {
          std::fprintf(stderr,
                       " %12zu %12zu %6s %10.1f %8.3f %8.3f %10.1f %8.3f %8.3f %9.3f %8.3f\n",
                       bytes, count, "f32", t[0] * 1e6, algbw, busbw, t[1] * 1e6, raw_algbw,
                       raw_algbw * 2.0 * (n - 1) / n, overhead, control_ratio);
        }
      } else if (printer) {
        std::fprintf(stderr, " %12zu %12zu %6s %10.1f %8.3f %8.3f %10s %8s %8s %9s %8s\n", bytes,
                     count, "f32", t[0] * 1e6, algbw, busbw, "-", "-", "-", "-", "-");
      }
      if (printer) std::printf("%s}\n", row.c_str());
      if (bytes == (std::size_t{4} << 20)) {
        overhead_4m = overhead;
        control_4m = control_ratio;
        time_4m = t[0];
      }
      if (bytes == (std::size_t{64} << 20)) overhead_64m = overhead;
    }

    // 200 gradients of 16 KiB: one allreduce-average each, or bucketed.
    constexpr int kTensors = 200;
    constexpr std::size_t kTensorCount = 16 * 1024 / sizeof(float);
    std::vector<Communicator::Buffer> grads;
    std::vector<float> ones(kTensorCount, 1.0F);
    for (int i = 0; i < kTensors; ++i) {
      grads.push_back(comm->allocate(kTensorCount * sizeof(float)));
      comm->copy(grads.back().get(), ones.data(), kTensorCount * sizeof(float));
    }
    comm->synchronize();
    xpscale::collectives::GradientBucketer bucketer(*comm);
    for (auto& g : grads) bucketer.add(g.get(), kTensorCount, DataType::kF32);
    const std::vector<std::vector<double>> bucket_samples =
        time_alternating({[&] {
                            for (int i = kTensors - 1; i >= 0; --i) {
                              comm->allreduce(grads[i].get(), grads[i].get(), kTensorCount,
                                              DataType::kF32, ReduceOp::kAvg);
                            }
                          },
                          [&] {
                            for (int i = kTensors - 1; i >= 0; --i)
                              bucketer.mark_ready(static_cast<std::size_t>(i));
                            bucketer.finish();
                          }},
                         3, args.rounds);
    const std::vector<double> t = {quantile(bucket_samples[0], 0.5),
                                   quantile(bucket_samples[1], 0.5)};
    const double speedup = t[0] / t[1];
    if (printer) {
      std::fprintf(stderr,
                   "# 200 x 16 KiB gradients: per-tensor %.1f us, bucketed %.1f us "
                   "(%zu buckets), speedup %.2f\n",
                   t[0] * 1e6, t[1] * 1e6, bucketer.bucket_count(), speedup);
      std::printf(
          "%s,\"case\":\"bucketer\",\"tensors\":%d,\"tensor_bytes\":16384,"
          "\"per_tensor_us\":%s,\"bucketed_us\":%s,\"buckets\":%zu,\"speedup\":%s}\n",
          head.c_str(), kTensors, json_number(t[0] * 1e6).c_str(), json_number(t[1] * 1e6).c_str(),
          bucketer.bucket_count(), json_number(speedup).c_str());
      auto field = [](double v) { return v < 0 ? std::string("null") : json_number(v); };
      std::printf(
          "%s,\"overhead_vs_raw_mpi_at_4MiB\":%s,\"overhead_vs_raw_mpi_at_64MiB\":%s,"
          "\"bucketed_vs_per_tensor_speedup\":%s,\"time_us_at_4MiB\":%s,"
          "\"control_vs_raw_mpi_at_4MiB\":%s}\n",
          head.c_str(), field(overhead_4m).c_str(), field(overhead_64m).c_str(),
          json_number(speedup).c_str(), field(time_4m < 0 ? -1 : time_4m * 1e6).c_str(),
          field(control_4m).c_str());
      std::fflush(stdout);
    }
    MPI_Comm_free(&raw);
    if (control != MPI_COMM_NULL) MPI_Comm_free(&control);
    comm.reset();
    MPI_Comm_free(&group);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "allreduce_bench: rank %d: %s\n", world_rank, e.what());
    status = 1;
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return status;
}
