"""torch.distributed gloo allreduce on the sizes allreduce_bench uses.

The peer comparison of bench/allreduce/run.sh: launched under mpiexec (one
process per rank; rank and size from Open MPI's environment), f32 sum,
timed the way allreduce_bench times ours: a barrier, `iters` calls, the
slowest rank's time per call, median over rounds. Prints one JSON line per
size.
"""
import argparse
import json
import os
import statistics
import time

import torch
import torch.distributed as dist


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--min-bytes", type=int, default=4096)
    parser.add_argument("--max-bytes", type=int, default=64 << 20)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    rank = int(os.environ["OMPI_COMM_WORLD_RANK"])
    size = int(os.environ["OMPI_COMM_WORLD_SIZE"])
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}",
                            rank=rank, world_size=size)
    nbytes = args.min_bytes
    while nbytes <= args.max_bytes:
        count = nbytes // 4
        data = torch.full((count,), 1.0 + rank, dtype=torch.float32)
        iters = max(2, min(200, (64 << 20) // nbytes // 8))
        dist.all_reduce(data)  # warm-up
        samples = []
        for _ in range(args.rounds):
            dist.barrier()
            start = time.perf_counter()
            for _ in range(iters):
                dist.all_reduce(data)
            mine = torch.tensor([(time.perf_counter() - start) / iters], dtype=torch.float64)
            dist.all_reduce(mine, op=dist.ReduceOp.MAX)
            samples.append(mine.item())
        if rank == 0:
            t = statistics.median(samples)
            algbw = nbytes / t / 1e9
            print(json.dumps({"bench": "allreduce_torch_gloo", "torch": torch.__version__,
                              "ranks": size, "size_bytes": nbytes, "count": count,
                              "dtype": "f32", "time_us": round(t * 1e6, 3),
                              "algbw_GBps": round(algbw, 4),
                              "busbw_GBps": round(algbw * 2 * (size - 1) / size, 4)}),
                  flush=True)
        nbytes *= 4
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
