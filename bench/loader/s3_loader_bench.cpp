// bench/loader, object-store part: the sharded loader reading shards from
// an S3 endpoint (s3rver in run_s3.sh), against the S3 Source alone
// fetching the same shards whole, in the same process. S3 is configured
// from AWS_* (open_source), as in a user's trial.
//
//   s3_loader_bench --url s3://B/P --write N [--sample-bytes B] [--shards S]
//   s3_loader_bench --url s3://B/P [--rounds R]
//
// --write puts N samples of B bytes (4096) as S shards (16) and their
// manifest "data.manifest.json" under s3://B/P, and exits. Without it,
// each of R rounds (3) reads every shard of that manifest once with the
// Source alone (as many threads as the loader's prefetcher, each reading
// whole shards) and once through a one-rank ShardedLoader (default
// options: shuffled shards, no shuffle buffer, automatic prefetch) that
// touches every sample, and prints one JSON line per read; the last line
// gives the medians and loader_vs_source (loader MiB/s / Source MiB/s).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "xpscale/sharding/dataset.h"
#include "xpscale/sharding/loader.h"
#include "xpscale/sharding/shard_writer.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::string url;
  std::uint64_t write = 0, sample_bytes = 4096, shards = 16;
  int rounds = 3;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--url")
      a.url = v;
    else if (k == "--write")
      a.write = std::stoull(v);
    else if (k == "--sample-bytes")
      a.sample_bytes = std::stoull(v);
    else if (k == "--shards")
      a.shards = std::stoull(v);
    else if (k == "--rounds")
      a.rounds = std::stoi(v);
    else
      throw std::invalid_argument("unknown option " + k);
  }
  if (a.url.empty()) throw std::invalid_argument("--url is required");
  if (a.rounds < 1) throw std::invalid_argument("--rounds must be at least 1");
  return a;
}

void write(const Args& a) {
  xpscale::ShardWriteOptions o;
  o.shards = a.shards;
  o.destinations = {a.url};
  xpscale::write_shards(
      a.write,
      [&](std::uint64_t i, xpscale::TarWriter& tar) {
        char key[16];
        std::snprintf(key, sizeof key, "%08llu", static_cast<unsigned long long>(i));
        tar.add(std::string(key) + ".bin", std::string(a.sample_bytes, static_cast<char>(i)));
        tar.add(std::string(key) + ".cls", std::to_string(i % 10));
      },
      o);
}

struct Run {
  double seconds = 0;
  std::uint64_t bytes = 0, samples = 0;
  double stall = 0;
  double mib_per_s() const { return static_cast<double>(bytes) / (1 << 20) / seconds; }
};

// Every shard whole through its Source, `threads` at a time.
Run source_alone(const xpscale::Dataset& d, int threads) {
  std::atomic<std::size_t> next{0};
  std::atomic<std::uint64_t> total{0};
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (std::size_t i; (i = next++) < d.shards.size();) {
        const xpscale::ObjectInfo& o = d.shards[i].object;
        auto source = xpscale::open_source(xpscale::parse_url(o.url));
        std::uint64_t bytes = 0;
        source->read(o, 0, o.size, [&](const char*, std::size_t size) {
          bytes += size;
          return true;
        });
        total += bytes;
      }
    });
  for (auto& th : pool) th.join();
  Run r;
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.bytes = total;
  r.samples = d.samples;
  return r;
}

Run loader(const xpscale::Dataset& d, std::uint64_t seed) {
  xpscale::LoaderOptions o;
  o.seed = seed;
  xpscale::ShardedLoader loader(d, o);
  std::uint64_t touched = 0, n = 0;
  const auto t0 = Clock::now();
  while (auto s = loader.next()) {
    touched += s->size();
    ++n;
  }
  Run r;
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.bytes = loader.stats().bytes;
  r.samples = n;
  r.stall = loader.stats().stall_fraction();
  if (n != d.samples || touched == 0)
    throw std::runtime_error("the loader returned " + std::to_string(n) + " of " +
                             std::to_string(d.samples) + " samples");
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void print(const char* measure, const Run& r) {
  std::printf(
      "{\"bench\":\"loader\",\"measure\":\"%s\",\"samples\":%llu,\"bytes\":%llu,"
      "\"seconds\":%.4f,\"mib_per_s\":%.2f,\"samples_per_s\":%.0f,\"stall_fraction\":%.4f}\n",
      measure, static_cast<unsigned long long>(r.samples), static_cast<unsigned long long>(r.bytes),
      r.seconds, r.mib_per_s(), static_cast<double>(r.samples) / r.seconds, r.stall);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    if (a.write > 0) {
      write(a);
      return 0;
    }
    const xpscale::Dataset d =
        xpscale::open_dataset({.manifest = xpscale::join_url(a.url, "data.manifest.json")});
    const int threads = 4;  // the loader's automatic prefetch threads for remote shards
    std::vector<double> source_rate, loader_rate, loader_samples, stall;
    for (int round = 0; round < a.rounds; ++round) {
      const Run s = source_alone(d, threads);
      print("s3_source_shards", s);
      const Run l = loader(d, static_cast<std::uint64_t>(round));
      print("s3_loader", l);
      source_rate.push_back(s.mib_per_s());
      loader_rate.push_back(l.mib_per_s());
      loader_samples.push_back(static_cast<double>(l.samples) / l.seconds);
      stall.push_back(l.stall);
    }
    std::printf(
        "{\"bench\":\"loader\",\"part\":\"s3_loader\",\"shards\":%zu,\"samples\":%llu,"
        "\"source_mib_per_s\":%.2f,\"loader_mib_per_s\":%.2f,\"s3_loader_samples_per_s\":%.0f,"
        "\"s3_loader_stall_fraction\":%.4f,\"loader_vs_source\":%.3f}\n",
        d.shards.size(), static_cast<unsigned long long>(d.samples), median(source_rate),
        median(loader_rate), median(loader_samples), median(stall),
        median(loader_rate) / median(source_rate));
    return 0;
  } catch (const std::invalid_argument& e) {
    std::cerr << "s3_loader_bench: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "s3_loader_bench: " << e.what() << "\n";
    return 1;
  }
}
