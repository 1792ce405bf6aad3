// The sharded loader over Azure Blob, end to end: `xpscale shard --upload
// az://loader/...` writes shards, indexes and the manifest to Azurite
// (fixture azurite), and loaders read them back through open_source()
// (configured from AZURE_STORAGE_CONNECTION_STRING like any user's
// process) via the fault proxy "loader" (fixture azproxy_loader: seeded
// resets, 503s and truncated bodies). Every test sets the connection string
// before its first Azure access: open_source() makes one Azure client per
// process, and ctest runs each test in a process of its own.
//
// The secrets of the run (the account key, a SAS signature) are grepped
// for in everything `xpscale shard` prints, failing runs included.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "azure_test_util.h"
#include "xpscale/sharding/dataset.h"
#include "xpscale/sharding/loader.h"

namespace xpscale {
namespace {

using test::azure_state;
using test::azure_state_dir;

constexpr std::uint64_t kSamples = 700;  // not a multiple of 3: ranks get repeats
constexpr std::uint64_t kShards = 6;

std::string connection_string(const std::string& endpoint_file) {
  return "AccountName=" + azure_state("account") + ";AccountKey=" + azure_state("key") +
         ";BlobEndpoint=" + azure_state(endpoint_file);
}

struct Result {
  int status = -1;
  std::string output;
};

// Runs command with `env` (NAME=VALUE ...) put into its environment by the
// shell, stdout and stderr together.
Result run(const std::string& env, const std::string& command) {
  Result r;
  FILE* p = popen(("env " + env + " " + command + " 2>&1").c_str(), "r");
  if (p == nullptr) throw std::runtime_error("popen failed: " + command);
  char buffer[4096];
  std::size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, p)) > 0) r.output.append(buffer, n);
  const int status = pclose(p);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }

std::string pad_of(std::uint64_t id) {
  return std::string((id * 53) % 1200 + 1, static_cast<char>('a' + id % 26));
}

class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "xpscale-azloader-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
    std::ofstream csv(path_ / "t.csv");
    csv << "id,pad\n";
    for (std::uint64_t i = 0; i < kSamples; ++i) csv << i << ',' << pad_of(i) << '\n';
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// `xpscale shard` of kSamples rows to `url` with the environment `env`.
Result shard_upload(const std::string& env, const std::string& url) {
  TempDir dir;
  return run(env, std::string(XPSCALE_BIN) + " shard " + dir.str() + "/t.csv --out " + dir.str() +
                      "/out --shards " + std::to_string(kShards) + " --upload " + url);
}

// Uploads to az://loader/<prefix> straight to Azurite; the manifest's URL.
std::string upload_dataset(const std::string& prefix) {
  const std::string url = "az://loader/" + prefix;
  const Result r =
      shard_upload("AZURE_STORAGE_CONNECTION_STRING=" + quoted(connection_string("endpoint")), url);
  if (r.status != 0) throw std::runtime_error("xpscale shard failed:\n" + r.output);
  EXPECT_EQ(r.output.find(azure_state("key")), std::string::npos) << r.output;
  return url + "/t.manifest.json";
}

// An allgather over threads, as ranks of one process.
class ThreadGroup {
 public:
  explicit ThreadGroup(int size) : size_(size), slots_(size) {}
  GroupView view(int rank) {
    return {rank, size_, [this, rank](const std::string& mine) { return gather(rank, mine); }};
  }

 private:
  std::vector<std::string> gather(int rank, const std::string& mine) {
    std::unique_lock lock(mutex_);
    const std::uint64_t round = round_;
    slots_[rank] = mine;
    if (++arrived_ == size_) {
      result_ = slots_;
      arrived_ = 0;
      ++round_;
      done_.notify_all();
      return result_;
    }
    // A rank that failed never arrives: fail instead of hanging.
    if (!done_.wait_for(lock, std::chrono::minutes(3), [&] { return round_ != round; }))
      throw std::runtime_error("allgather: rank " + std::to_string(rank) + " waited 3 minutes");
    return result_;
  }
  int size_;
  std::mutex mutex_;
  std::condition_variable done_;
  std::vector<std::string> slots_, result_;
  int arrived_ = 0;
  std::uint64_t round_ = 0;
};

// Per epoch, how often each sample was seen as a real (not repeat) sample,
// and per rank how many samples it got; each sample's bytes checked.
struct Epoch {
  std::map<std::uint64_t, int> real;
  std::vector<std::size_t> per_rank;
};

std::vector<Epoch> read_epochs(const DatasetLocation& where, int ranks, int epochs,
                               const std::string& cache_dir = "") {
  LoaderOptions options;
  options.cache_dir = cache_dir;
  options.seed = 5;
  options.shuffle_buffer_bytes = 64 << 10;
  options.read_bytes = 16 << 10;  // many ranged reads per shard: many draws of the proxy
  ThreadGroup group(ranks);
  std::vector<Epoch> out(epochs);
  for (Epoch& e : out) e.per_rank.assign(ranks, 0);
  std::mutex mutex;
  std::vector<std::exception_ptr> errors(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      try {
        ShardedLoader loader(open_dataset(where), options, group.view(r));
        for (int e = 0; e < epochs; ++e) {
          while (auto s = loader.next()) {
            const std::uint64_t id = std::stoull(std::string(s->field("id")));
            if (s->field("pad") != pad_of(id))
              throw std::runtime_error("sample " + std::to_string(id) + ": wrong bytes");
            const std::lock_guard lock(mutex);
            ++out[e].per_rank[r];
            if (!s->repeat) ++out[e].real[id];
          }
        }
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return out;
}

void expect_each_sample_once_per_epoch(const std::vector<Epoch>& epochs, int ranks) {
  const std::size_t per_rank = (kSamples + ranks - 1) / ranks;
  for (std::size_t e = 0; e < epochs.size(); ++e) {
    EXPECT_EQ(epochs[e].real.size(), kSamples) << "epoch " << e;
    for (const auto& [id, times] : epochs[e].real)
      EXPECT_EQ(times, 1) << "sample " << id << ", epoch " << e;
    for (int r = 0; r < ranks; ++r) EXPECT_EQ(epochs[e].per_rank[r], per_rank) << "rank " << r;
  }
}

// Faults the proxy "loader" drew for requests whose target contains part.
std::map<std::string, int> faults_for(const std::string& part) {
  std::ifstream log(azure_state_dir() + "/loader.log");
  std::map<std::string, int> counts;
  std::string fault, method, target, rest;
  while (log >> fault >> method >> target) {
    std::getline(log, rest);
    if (target.find(part) != std::string::npos) ++counts[fault];
  }
  return counts;
}

void use_azure_through_fault_proxy() {
  setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string("loader_endpoint").c_str(), 1);
}

TEST(AzureLoader, ShardUploadPutsEveryObjectInTheContainer) {
  const std::string manifest = upload_dataset("upload");
  use_azure_through_fault_proxy();
  const Dataset d = open_dataset({.manifest = manifest});
  EXPECT_EQ(d.shards.size(), kShards);
  EXPECT_EQ(d.samples, kSamples);
  // Shards, their index sidecars and the manifest.
  const auto listed = open_source(parse_url(manifest))->list(parse_url("az://loader/upload/"));
  EXPECT_EQ(listed.size(), 2 * kShards + 1);
}

// Three ranks, two epochs, through resets, 503s and truncated bodies:
// every sample once per epoch, and every kind of fault met.
TEST(AzureLoader, ThreeRanksGetEverySampleOncePerEpochThroughInjectedFaults) {
  const std::string manifest = upload_dataset("faults");
  use_azure_through_fault_proxy();
  expect_each_sample_once_per_epoch(read_epochs({.manifest = manifest}, 3, 2), 3);
  auto faults = faults_for("/loader/faults/");
  for (const char* kind : {"reset", "slowdown", "truncate"}) EXPECT_GT(faults[kind], 0) << kind;
  EXPECT_GT(faults["none"], 0);
}

// Named by the prefix its shards share (List Blobs) or a brace pattern:
// the same dataset as by its manifest.
TEST(AzureLoader, PrefixAndPatternNameTheSameDatasetAsTheManifest) {
  const std::string manifest = upload_dataset("named");
  use_azure_through_fault_proxy();
  const Dataset by_manifest = open_dataset({.manifest = manifest});
  const Dataset by_prefix = open_dataset({.prefix = "az://loader/named/"});
  const Dataset by_pattern = open_dataset({.pattern = "az://loader/named/t-{000000..000005}.tar"});
  EXPECT_EQ(by_prefix.digest, by_manifest.digest);
  EXPECT_EQ(by_pattern.digest, by_manifest.digest);
  expect_each_sample_once_per_epoch(read_epochs({.prefix = "az://loader/named/"}, 2, 1), 2);
}

// Two loaders on one node (two trials) share a cache directory: both read
// every sample, and the cache holds one file per shard.
TEST(AzureLoader, NodeLocalCacheServesTwoLoaders) {
  const std::string manifest = upload_dataset("cached");
  use_azure_through_fault_proxy();
  TempDir cache;
  std::vector<Epoch> trials[2];
  std::thread a([&] { trials[0] = read_epochs({.manifest = manifest}, 1, 2, cache.str()); });
  std::thread b([&] { trials[1] = read_epochs({.manifest = manifest}, 1, 2, cache.str()); });
  a.join();
  b.join();
  for (const auto& seen : trials) expect_each_sample_once_per_epoch(seen, 1);
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(cache.str()))
    files += e.path().extension() == ".shard";
  EXPECT_EQ(files, kShards);
}

TEST(AzureLoader, MissingManifestIsAnErrorNamingItsUrl) {
  use_azure_through_fault_proxy();
  const std::string missing = "az://loader/none/t.manifest.json";
  const std::string what = test::error_of([&] { open_dataset({.manifest = missing}); });
  EXPECT_NE(what.find(missing), std::string::npos) << what;
  EXPECT_NE(what.find("404"), std::string::npos) << what;
}

// The account key and a SAS signature of the run never show in what
// `xpscale shard --upload` prints, neither when it works nor when the
// server refuses them (the error names the account instead).
TEST(AzureLoader, SecretsNeverShowInWhatXpscalePrints) {
  const std::string key = azure_state("key");
  const std::string endpoint = azure_state("endpoint");
  const std::string account = azure_state("account");
  const std::string wrong_key = "c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1iZS1wcmludGVkLTAxMjM0NQ==";
  const Result denied = shard_upload(
      "AZURE_STORAGE_CONNECTION_STRING=" + quoted("AccountName=" + account + ";AccountKey=" +
                                                  wrong_key + ";BlobEndpoint=" + endpoint),
      "az://loader/secret-key");
  EXPECT_NE(denied.status, 0);
  EXPECT_NE(denied.output.find("HTTP 403"), std::string::npos) << denied.output;
  EXPECT_NE(denied.output.find("\"" + account + "\""), std::string::npos) << denied.output;
  EXPECT_EQ(denied.output.find(wrong_key), std::string::npos) << denied.output;
  EXPECT_EQ(denied.output.find(key), std::string::npos) << denied.output;

  const nlohmann::json c = {{"op", "sas"},
                            {"account", account},
                            {"key", key},
                            {"expires", "2099-01-01T00:00:00Z"},
                            {"version", "2025-11-05"}};
  const std::string sas = test::azure_sdk(nlohmann::json::array({c}))[0]["sas"];
  const std::string sig = sas.substr(sas.find("sig=") + 4);
  // A SAS with the emulator's endpoint comes in a connection string.
  const Result by_sas =
      shard_upload("AZURE_STORAGE_CONNECTION_STRING=" +
                       quoted("BlobEndpoint=" + endpoint + ";SharedAccessSignature=" + sas),
                   "az://loader/secret-sas");
  EXPECT_EQ(by_sas.status, 0) << by_sas.output;
  EXPECT_EQ(by_sas.output.find(sig), std::string::npos) << by_sas.output;
  const std::string bad_sas = sas.substr(0, sas.find("sig=") + 4) + "AAAA" + sig.substr(4);
  const Result refused =
      shard_upload("AZURE_STORAGE_CONNECTION_STRING=" +
                       quoted("BlobEndpoint=" + endpoint + ";SharedAccessSignature=" + bad_sas),
                   "az://loader/secret-sas-refused");
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.output.find("HTTP 403"), std::string::npos) << refused.output;
  EXPECT_EQ(refused.output.find(sig), std::string::npos) << refused.output;
  EXPECT_EQ(refused.output.find(bad_sas), std::string::npos) << refused.output;
}

// A shard above 64 MiB goes up as Put Block + Put Block List from the
// command line too, and reads back whole (one 70 MiB sample).
TEST(AzureLoader, ShardUploadAbove64MiBGoesAsBlocksAndReadsBack) {
  TempDir dir;
  std::filesystem::create_directories(dir.str() + "/big/a");
  std::string bytes(70 << 20, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<char>((i * 2654435761u) >> 13);
  std::ofstream(dir.str() + "/big/a/x.bin", std::ios::binary) << bytes;
  std::ofstream(dir.str() + "/big/a/x.cls") << "7";
  const Result r = run("AZURE_STORAGE_CONNECTION_STRING=" + quoted(connection_string("endpoint")),
                       std::string(XPSCALE_BIN) + " shard " + dir.str() + "/big --out " +
                           dir.str() + "/out --shards 1 --name big --upload az://loader/big");
  ASSERT_EQ(r.status, 0) << r.output;
  setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string("endpoint").c_str(), 1);
  const Dataset d = open_dataset({.manifest = "az://loader/big/big.manifest.json"});
  ASSERT_EQ(d.shards.size(), 1u);
  EXPECT_GT(d.shards[0].object.size, std::uint64_t{64} << 20);
  ThreadGroup group(1);
  ShardedLoader loader(d, LoaderOptions{}, group.view(0));
  const auto sample = loader.next();
  ASSERT_TRUE(sample);
  EXPECT_EQ(sample->field("cls"), "7");
  EXPECT_TRUE(sample->field("bin") == bytes);
  EXPECT_FALSE(loader.next());
}

}  // namespace
}  // namespace xpscale
