// bench/loader, file:// part: the sharded loader reading file:// shards
// against `cat` of the same files to /dev/null, small-sample decode rate on
// one core, and the data stall fraction of the Fashion-MNIST trainer
// reading its training images through the loader. One JSON line per
// measurement on stdout, the last one the summary:
//   {"bench":"loader","file_vs_cat":a,"small_samples_per_s":n,"stall_fraction":s,...}
//
//   file_bench [--dir D] [--mib 1024] [--small 200000] [--repeat 5] [--fmnist DIR]
//              [--read-kib 4096] [--threads 0] [--fmnist-epochs 3]
#include <fcntl.h>
#include <mpi.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "fmnist/data_parallel.h"
#include "fmnist/dataset.h"
#include "xpscale/collectives/communicator.h"
#include "xpscale/sharding/dataset.h"
#include "xpscale/sharding/loader.h"
#include "xpscale/sharding/shard_writer.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Writes `samples` samples of one `bytes`-byte field as `shards` shards.
std::string make_shards(const fs::path& dir, const std::string& name, std::uint64_t samples,
                        std::size_t bytes, std::uint64_t shards) {
  xpscale::ShardWriteOptions o;
  o.name = name;
  o.shards = shards;
  o.destinations = {dir.string()};
  std::string payload(bytes, 'p');
  xpscale::write_shards(
      samples,
      [&](std::uint64_t i, xpscale::TarWriter& tar) {
        char key[32];
        std::snprintf(key, sizeof key, "%09llu", static_cast<unsigned long long>(i));
        payload[0] = static_cast<char>(i);
        tar.add(std::string(key) + ".bin", payload);
      },
      o);
  return (dir / (name + ".manifest.json")).string();
}

// `cat FILES > /dev/null`, timed from fork to exit.
double time_cat(const std::vector<std::string>& files) {
  std::vector<char*> argv{const_cast<char*>("cat")};
  for (const auto& f : files) argv.push_back(const_cast<char*>(f.c_str()));
  argv.push_back(nullptr);
  const auto start = Clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, STDOUT_FILENO);
    execvp("cat", argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("cat failed");
  return seconds_since(start);
}

// One epoch through the loader, touching every byte of every sample.
struct LoaderRun {
  double seconds = 0;
  std::uint64_t samples = 0;
  xpscale::LoaderStats stats;
};

LoaderRun time_loader(const xpscale::Dataset& dataset, const xpscale::LoaderOptions& options) {
  LoaderRun run;
  xpscale::ShardedLoader loader(dataset, options);
  std::uint64_t checksum = 0;
  const auto start = Clock::now();
  while (auto s = loader.next()) {
    checksum += static_cast<unsigned char>(s->fields.back().data.back());
    ++run.samples;
  }
  run.seconds = seconds_since(start);
  run.stats = loader.stats();
  if (checksum == 42) std::cerr << "";  // keep the loop's work
  return run;
}

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return argv[i + 1];
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  const fs::path dir =
      arg(argc, argv, "--dir", (fs::temp_directory_path() / "xpscale-loader-bench").string());
  const std::uint64_t mib = std::stoull(arg(argc, argv, "--mib", "1024"));
  const std::uint64_t small = std::stoull(arg(argc, argv, "--small", "200000"));
  const int repeat = std::stoi(arg(argc, argv, "--repeat", "5"));
  const fs::path fmnist_dir = arg(argc, argv, "--fmnist", fmnist::default_data_dir().string());
  fs::remove_all(dir);
  fs::create_directories(dir);

  // (a) throughput: 64 KiB samples, 16 shards.
  const std::size_t big = 64 << 10;
  const std::string manifest = make_shards(dir / "big", "big", mib * 16, big, 16);
  const xpscale::Dataset dataset = xpscale::open_dataset({.manifest = "file://" + manifest});
  std::vector<std::string> files;
  std::uint64_t total_bytes = 0;
  for (const auto& shard : dataset.shards) {
    files.push_back(xpscale::parse_url(shard.object.url).path);
    total_bytes += shard.object.size;
  }
  xpscale::LoaderOptions options;
  options.shuffle_shards = false;
  options.read_bytes = std::stoull(arg(argc, argv, "--read-kib", "4096")) << 10;
  options.prefetch_threads = std::stoi(arg(argc, argv, "--threads", "0"));  // 0: automatic
  std::vector<double> cat_s, loader_s;
  LoaderRun last;
  time_cat(files);  // warm the page cache for both
  for (int r = 0; r < repeat; ++r) {
    cat_s.push_back(time_cat(files));
    last = time_loader(dataset, options);
    loader_s.push_back(last.seconds);
  }
  const double cat_bps = total_bytes / median(cat_s), loader_bps = total_bytes / median(loader_s);
  std::printf(
      "{\"bench\":\"loader\",\"case\":\"cat\",\"bytes\":%llu,\"seconds\":%.4f,\"mib_per_s\":%.1f}"
      "\n",
      static_cast<unsigned long long>(total_bytes), median(cat_s), cat_bps / (1 << 20));
  std::printf(
      "{\"bench\":\"loader\",\"case\":\"file_loader\",\"bytes\":%llu,\"samples\":%llu,"
      "\"seconds\":%.4f,\"mib_per_s\":%.1f,\"samples_per_s\":%.0f,\"stall_fraction\":%.4f}\n",
      static_cast<unsigned long long>(total_bytes), static_cast<unsigned long long>(last.samples),
      median(loader_s), loader_bps / (1 << 20), last.samples / median(loader_s),
      last.stats.stall_fraction());
  fs::remove_all(dir / "big");

  // (c) 1 KiB samples decoded from tar, one consumer thread.
  const std::string small_manifest = make_shards(dir / "small", "small", small, 1024, 8);
  const xpscale::Dataset small_set =
      xpscale::open_dataset({.manifest = "file://" + small_manifest});
  xpscale::LoaderOptions small_options;
  small_options.shuffle_shards = false;
  std::vector<double> small_s;
  for (int r = 0; r < repeat; ++r) small_s.push_back(time_loader(small_set, small_options).seconds);
  const double small_rate = small / median(small_s);
  std::printf(
      "{\"bench\":\"loader\",\"case\":\"small_samples\",\"samples\":%llu,\"sample_bytes\":1024,"
      "\"seconds\":%.4f,\"samples_per_s\":%.0f}\n",
      static_cast<unsigned long long>(small), median(small_s), small_rate);
  fs::remove_all(dir / "small");

  // Stall fraction of the Fashion-MNIST trainer (one rank, batch 128, one
  // epoch, shuffle buffer 4 MiB) reading shards written from the IDX files.
  double stall = -1, stall_min = -1, stall_max = -1;
  {
    const fmnist::Dataset data = fmnist::load_dataset(fmnist_dir);
    const fmnist::Split& train = data.train;
    xpscale::ShardWriteOptions o;
    o.name = "train";
    o.shards = 16;
    o.destinations = {(dir / "fmnist").string()};
    xpscale::write_shards(
        train.size(),
        [&](std::uint64_t i, xpscale::TarWriter& tar) {
          char key[16];
          std::snprintf(key, sizeof key, "%06llu", static_cast<unsigned long long>(i));
          tar.add(std::string(key) + ".u8",
                  std::string_view(
                      reinterpret_cast<const char*>(train.pixels.data()) + i * fmnist::kPixels,
                      fmnist::kPixels));
          tar.add(std::string(key) + ".cls", std::to_string(train.labels[i]));
        },
        o);
    // The trainer as the example runs it: one loader for `epochs` epochs
    // (--fmnist-epochs, 3). An epoch is under a second, so a run's stall is
    // mostly its epochs' first pieces and follows the machine's load (the
    // prefetch thread waiting for a core): the trainer runs `repeat` times
    // and the summary takes the median, with the spread printed.
    const int epochs = std::stoi(arg(argc, argv, "--fmnist-epochs", "3"));
    std::vector<double> stalls;
    for (int r = 0; r < repeat; ++r) {
      xpscale::LoaderOptions lo;
      lo.seed = 1;
      lo.shuffle_buffer_bytes = 4 << 20;
      xpscale::ShardedLoader loader(
          xpscale::open_dataset({.manifest = (dir / "fmnist" / "train.manifest.json").string()}),
          lo);
      auto comm = xpscale::collectives::make_communicator(MPI_COMM_SELF);
      fmnist::TrainOptions t;
      t.batch_size = 128;
      t.lr = 0.05;
      fmnist::DataParallelTrainer trainer(loader.samples_per_epoch(), t, *comm);
      const std::size_t steps = loader.samples_per_epoch() / 128;
      const auto start = Clock::now();
      double fill_s = 0;  // the trainer's time in its batch fill: next() and the decode
      std::string epoch_waits;  // each epoch's wait_s
      double waited_before = 0;
      for (int e = 0; e < epochs; ++e) {
        trainer.train_epoch_streamed(steps, [&](float* x, std::uint8_t* y, int n) {
          const auto fill_start = Clock::now();
          for (int j = 0; j < n; ++j) {
            auto s = loader.next();
            fmnist::normalise_image(reinterpret_cast<const std::uint8_t*>(s->field("u8").data()),
                                    x + static_cast<std::size_t>(j) * fmnist::kPixels);
            y[j] = static_cast<std::uint8_t>(std::stoi(std::string(s->field("cls"))));
          }
          fill_s += seconds_since(fill_start);
        });
        while (loader.next()) {  // the epoch's last partial batch
        }
        const double waited = loader.stats().wait_s;
        char text[32];
        std::snprintf(text, sizeof text, "%s%.5f", e ? "," : "", waited - waited_before);
        epoch_waits += text;
        waited_before = waited;
      }
      const xpscale::LoaderStats st = loader.stats();
      stalls.push_back(st.stall_fraction());
      // The breakdown: wait_s (next() blocked for bytes), of which
      // first_wait_s before the epochs' first pieces, in `waits` calls, and
      // per epoch; fill_s the whole batch fill (waits, parsing, decode) as
      // the trainer sees it.
      std::printf(
          "{\"bench\":\"loader\",\"case\":\"fmnist_trainer\",\"run\":%d,\"epochs\":%d,"
          "\"samples\":%llu,\"seconds\":%.3f,\"samples_per_s\":%.0f,\"stall_fraction\":%.5f,"
          "\"wait_s\":%.5f,\"first_wait_s\":%.5f,\"waits\":%llu,\"epoch_wait_s\":[%s],"
          "\"fill_s\":%.4f}\n",
          r, epochs, static_cast<unsigned long long>(st.samples), seconds_since(start),
          st.samples_per_s(), st.stall_fraction(), st.wait_s, st.first_wait_s,
          static_cast<unsigned long long>(st.waits), epoch_waits.c_str(), fill_s);
      std::fflush(stdout);
    }
    stall = median(stalls);
    stall_min = *std::min_element(stalls.begin(), stalls.end());
    stall_max = *std::max_element(stalls.begin(), stalls.end());
  }
  fs::remove_all(dir);
  std::printf(
      "{\"bench\":\"loader\",\"file_vs_cat\":%.3f,\"small_samples_per_s\":%.0f,"
      "\"stall_fraction\":%.5f,\"stall_fraction_min\":%.5f,\"stall_fraction_max\":%.5f}\n",
      loader_bps / cat_bps, small_rate, stall, stall_min, stall_max);
  MPI_Finalize();
  return 0;
}
