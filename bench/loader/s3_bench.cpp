// bench/loader, object-store part: how fast the S3 Source (make_s3_source)
// moves whole objects from an S3 endpoint into memory, or, with --store az,
// the Azure Blob Source (make_azure_source). run_s3.sh runs it against
// s3rver next to curl and boto3 fetching the same objects, run_az.sh
// against Azurite next to curl with a SAS URL.
//
//   s3_bench --endpoint URL --bucket B --prefix P --put N --size BYTES
//   s3_bench --endpoint URL --bucket B --prefix P [--threads T]
//            [--parallel-parts K] [--part-size BYTES] [--label L]
//   s3_bench --store az --bucket CONTAINER --prefix P ...
//
// With --store az the account, credentials and endpoint come from the
// environment as for a trial (azure_options_from_env), and --bucket names
// the container.
// --put writes N objects of BYTES random bytes under P and exits. Without
// it, the objects listed under P are read by T threads (16) sharing one
// Source, one object at a time each (K, BYTES: TransferOptions'
// max_parallel and part_size, the library's defaults unless given), and
// one JSON line is
// printed: bytes, seconds, MiB/s, CPU seconds and a checksum of the bytes (so that the
// reads cannot be skipped).
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "xpscale/sharding/azure.h"
#include "xpscale/sharding/error.h"
#include "xpscale/sharding/s3.h"

namespace {

struct Args {
  std::string store = "s3", endpoint, bucket, prefix, label;
  std::uint64_t put = 0, size = 0;
  unsigned threads = 16;
  // 0: the library's defaults (TransferOptions).
  std::uint64_t part_size = 0;
  unsigned parallel_parts = 0;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--store")
      a.store = v;
    else if (k == "--endpoint")
      a.endpoint = v;
    else if (k == "--bucket")
      a.bucket = v;
    else if (k == "--prefix")
      a.prefix = v;
    else if (k == "--label")
      a.label = v;
    else if (k == "--put")
      a.put = std::stoull(v);
    else if (k == "--size")
      a.size = std::stoull(v);
    else if (k == "--part-size")
      a.part_size = std::stoull(v);
    else if (k == "--threads")
      a.threads = static_cast<unsigned>(std::stoul(v));
    else if (k == "--parallel-parts")
      a.parallel_parts = static_cast<unsigned>(std::stoul(v));
    else
      throw std::invalid_argument("unknown option " + k);
  }
  if (a.store != "s3" && a.store != "az") throw std::invalid_argument("--store is s3 or az");
  if ((a.store == "s3" && a.endpoint.empty()) || a.bucket.empty()) {
    throw std::invalid_argument("--endpoint (for s3) and --bucket are required");
  }
  if (a.label.empty()) a.label = a.store == "s3" ? "xpscale_s3" : "xpscale_az";
  return a;
}

void tune(const Args& a, xpscale::TransferOptions& transfer) {
  if (a.part_size != 0) transfer.part_size = a.part_size;
  if (a.parallel_parts != 0) transfer.max_parallel = a.parallel_parts;
}

// The Source and the transfer options it reads with.
std::pair<std::shared_ptr<xpscale::Source>, xpscale::TransferOptions> source(const Args& a) {
  if (a.store == "az") {
    xpscale::AzureOptions o = xpscale::azure_options_from_env();
    if (!a.endpoint.empty()) o.endpoint = a.endpoint;
    tune(a, o.transfer);
    return {xpscale::make_azure_source(o), o.transfer};
  }
  xpscale::S3Options o = xpscale::s3_options_from_env();
  o.endpoint = a.endpoint;
  o.path_style = true;
  tune(a, o.transfer);
  return {xpscale::make_s3_source(o), o.transfer};
}

void put(xpscale::Source& s3, const Args& a) {
  std::mt19937_64 rng(1);
  std::string bytes(a.size, '\0');
  for (std::uint64_t n = 0; n < a.put; ++n) {
    for (std::size_t i = 0; i + 8 <= bytes.size(); i += 8) {
      const std::uint64_t v = rng();
      std::memcpy(bytes.data() + i, &v, 8);
    }
    char name[32];
    std::snprintf(name, sizeof name, "obj-%06llu.bin", static_cast<unsigned long long>(n));
    s3.put(xpscale::Url{a.store, a.bucket, a.prefix + name}, bytes);
  }
}

// User + system CPU time of this process so far, in seconds.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

void read(xpscale::Source& s3, const Args& a, const xpscale::TransferOptions& transfer) {
  const auto objects = s3.list(xpscale::Url{a.store, a.bucket, a.prefix});
  std::atomic<std::size_t> next{0};
  std::atomic<std::uint64_t> total{0}, checksum{0};
  const double cpu0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < a.threads; ++t) {
    pool.emplace_back([&] {
      for (std::size_t i; (i = next++) < objects.size();) {
        std::uint64_t bytes = 0, sum = 0;
        s3.read(objects[i], 0, UINT64_MAX, [&](const char* data, std::size_t size) {
          // Sum of the bytes at object offsets 0, 4096, 8192, ...
          for (std::size_t j = (4096 - bytes % 4096) % 4096; j < size; j += 4096) {
            sum += static_cast<unsigned char>(data[j]);
          }
          bytes += size;
          return true;
        });
        total += bytes;
        checksum += sum;
      }
    });
  }
  for (auto& th : pool) th.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = cpu_seconds() - cpu0;
  std::printf(
      "{\"bench\":\"loader\",\"measure\":\"%s\",\"objects\":%zu,\"bytes\":%llu,\"seconds\":%.4f,"
      "\"mib_per_s\":%.2f,\"cpu_s\":%.4f,\"threads\":%u,\"parallel_parts\":%u,\"part_size\":%llu,"
      "\"checksum\":%llu}\n",
      a.label.c_str(), objects.size(), static_cast<unsigned long long>(total.load()), s,
      static_cast<double>(total.load()) / (1 << 20) / s, cpu, a.threads, transfer.max_parallel,
      static_cast<unsigned long long>(transfer.part_size),
      static_cast<unsigned long long>(checksum.load()));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    const auto [store, transfer] = source(a);
    if (a.put > 0) {
      put(*store, a);
    } else {
      read(*store, a, transfer);
    }
    return 0;
  } catch (const std::invalid_argument& e) {
    std::cerr << "s3_bench: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "s3_bench: " << e.what() << "\n";
    return 1;
  }
}
