// The sharded loader over S3, end to end: `xpscale shard --upload s3://`
// writes the shards to s3rver (fixture s3rver), and loaders read them back
// through open_source() (configured from AWS_* like any user's process)
// via the fault proxy "loader" (fixture s3proxy: seeded resets, 503
// SlowDown and truncated bodies). XPSCALE_S3_STATE names the fixture's
// state directory.
//
// Every test points AWS_ENDPOINT_URL at the same proxy before its first
// S3 access: open_source() configures one S3 client per process on first
// use, and ctest runs each test in a process of its own.
#include <stdlib.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "s3_test_util.h"
#include "xpscale/sharding/dataset.h"
#include "xpscale/sharding/error.h"
#include "xpscale/sharding/loader.h"
#include "xpscale/sharding/manifest.h"
#include "xpscale/sharding/s3.h"

namespace xpscale {
namespace {

using test::error_of;
using test::state_dir;
using test::state_file;

constexpr const char* kBucket = "xpscale-test";  // created by the fixture
constexpr std::uint64_t kSamples = 1000;         // not a multiple of 3: ranks get repeats
constexpr std::uint64_t kShards = 8;

// s3rver knows the access key S3RVER and checks no signature.
const char* const kCredentials = "AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=s3rver-secret ";

// This process's S3 (open_source) goes through the fault proxy "loader".
void use_s3_through_fault_proxy() {
  setenv("AWS_ENDPOINT_URL", state_file("loader_endpoint").c_str(), 1);
  unsetenv("AWS_ENDPOINT_URL_S3");
  unsetenv("AWS_PROFILE");
  setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "s3rver-secret", 1);
  setenv("AWS_REGION", "us-east-1", 1);
}

// A client that talks to s3rver directly, to check what is stored.
std::shared_ptr<Source> direct_s3() {
  S3Options o;
  o.endpoint = state_file("endpoint");
  o.path_style = true;
  o.credentials = {"S3RVER", "s3rver-secret", ""};
  return make_s3_source(o);
}

// The whole object at url, read through `s3` (not open_source()).
std::string read_object_direct(Source& s3, const std::string& url) {
  const ObjectInfo info = s3.stat(parse_url(url));
  std::string out;
  s3.read(info, 0, info.size, [&](const char* data, std::size_t size) {
    out.append(data, size);
    return true;
  });
  return out;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "xpscale-s3loader-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

struct Result {
  int status = -1;
  std::string output;
};

Result run(const std::string& command) {
  Result r;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) throw std::runtime_error("popen failed: " + command);
  char buffer[4096];
  std::size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, p)) > 0) r.output.append(buffer, n);
  const int status = pclose(p);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// The "pad" field of sample id: 1 to 1500 bytes, so that shards and reads
// hold samples of different sizes.
std::string pad_of(std::uint64_t id) {
  return std::string((id * 37) % 1500 + 1, static_cast<char>('a' + id % 26));
}

// Writes kSamples rows (id, pad) as kShards shards with `xpscale shard`,
// uploaded straight to s3rver under s3://xpscale-test/<prefix>/ (name "t").
// Prefixes start with "loader-": s3_source_test lists prefixes of its own
// in the same bucket.
// Returns the manifest's URL. With scheme "gs" the upload goes to
// gs://xpscale-test/<prefix>/ through the GCS configuration (gcs_env), and
// `output` receives what xpscale printed.
std::string gcs_env(const std::string& endpoint);
std::string upload_dataset(const std::string& prefix, const std::string& scheme = "s3",
                           std::string* output = nullptr) {
  TempDir dir;
  {
    std::ofstream csv(dir.str() + "/t.csv");
    csv << "id,pad\n";
    for (std::uint64_t i = 0; i < kSamples; ++i) csv << i << ',' << pad_of(i) << '\n';
  }
  const std::string url = scheme + "://" + kBucket + "/" + prefix;
  const std::string env =
      scheme == "gs" ? gcs_env(state_file("endpoint"))
                     : "env AWS_ENDPOINT_URL=" + state_file("endpoint") + " " + kCredentials;
  const Result r = run(env + XPSCALE_BIN + " shard " + dir.str() + "/t.csv --out " + dir.str() +
                       "/out --shards " + std::to_string(kShards) + " --upload " + url);
  if (output != nullptr) *output = r.output;
  if (r.status != 0) throw std::runtime_error("xpscale shard failed:\n" + r.output);
  if (r.output.find("t.manifest.json") == std::string::npos)
    throw std::runtime_error("xpscale shard did not name the manifest:\n" + r.output);
  return url + "/t.manifest.json";
}

// An allgather over threads, as ranks of one process: every rank calls
// it the same number of times; a round completes when all have arrived.
class ThreadGroup {
 public:
  explicit ThreadGroup(int size) : size_(size), slots_(size) {}

  GroupView view(int rank) {
    return {rank, size_, [this, rank](const std::string& mine) { return allgather(rank, mine); }};
  }

 private:
  std::vector<std::string> allgather(int rank, const std::string& mine) {
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
    // A rank that failed never arrives: fail too instead of hanging.
    if (!done_.wait_for(lock, std::chrono::minutes(3), [&] { return round_ != round; }))
      throw std::runtime_error("allgather: rank " + std::to_string(rank) +
                               " waited 3 minutes for the others");
    return result_;
  }

  int size_;
  std::mutex mutex_;
  std::condition_variable done_;
  std::vector<std::string> slots_, result_;
  int arrived_ = 0;
  std::uint64_t round_ = 0;
};

struct Seen {
  std::uint64_t id;
  bool repeat;
};

// Runs `ranks` loaders on threads for `epochs` epochs; returns what each
// rank saw, per epoch, checking every sample's bytes on the way.
std::vector<std::vector<std::vector<Seen>>> read_epochs(const DatasetLocation& where, int ranks,
                                                        int epochs, LoaderOptions options) {
  ThreadGroup group(ranks);
  std::vector<std::vector<std::vector<Seen>>> seen(ranks);
  std::vector<std::exception_ptr> errors(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      try {
        ShardedLoader loader(open_dataset(where), options, group.view(r));
        for (int e = 0; e < epochs; ++e) {
          auto& epoch = seen[r].emplace_back();
          while (auto s = loader.next()) {
            const std::uint64_t id = std::stoull(std::string(s->field("id")));
            if (s->field("pad") != pad_of(id))
              throw std::runtime_error("sample " + std::to_string(id) + ": wrong bytes");
            epoch.push_back({id, s->repeat});
          }
        }
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return seen;
}

// Every sample exactly once per epoch (repeats are flagged and only pad
// the ranks to equal counts), and every rank with the same count.
void expect_each_sample_once_per_epoch(const std::vector<std::vector<std::vector<Seen>>>& seen,
                                       int epochs) {
  const std::size_t ranks = seen.size();
  const std::size_t per_rank = (kSamples + ranks - 1) / ranks;
  for (int e = 0; e < epochs; ++e) {
    std::map<std::uint64_t, int> real;
    std::size_t repeats = 0;
    for (std::size_t r = 0; r < ranks; ++r) {
      ASSERT_EQ(seen[r].size(), static_cast<std::size_t>(epochs)) << "rank " << r;
      EXPECT_EQ(seen[r][e].size(), per_rank) << "rank " << r << ", epoch " << e;
      for (const Seen& s : seen[r][e]) {
        EXPECT_LT(s.id, kSamples);
        if (s.repeat)
          ++repeats;
        else
          ++real[s.id];
      }
    }
    EXPECT_EQ(real.size(), kSamples) << "epoch " << e;
    for (const auto& [id, times] : real) EXPECT_EQ(times, 1) << "sample " << id << ", epoch " << e;
    EXPECT_EQ(repeats, per_rank * ranks - kSamples) << "epoch " << e;
  }
}

// Requests the proxy "loader" has logged ("FAULT METHOD TARGET HTTP/1.1").
struct ProxyLine {
  std::string fault, method, target;
};

std::vector<ProxyLine> proxy_log() {
  std::ifstream log(state_dir() + "/loader.log");
  std::vector<ProxyLine> lines;
  for (ProxyLine l; log >> l.fault >> l.method >> l.target;) {
    lines.push_back(l);
    std::string rest;
    std::getline(log, rest);
  }
  return lines;
}

// Faults drawn for requests whose target contains `part` (a test's own
// prefix: other tests may use the proxy at the same time).
std::map<std::string, int> faults_for(const std::string& part) {
  std::map<std::string, int> counts;
  for (const ProxyLine& l : proxy_log())
    if (l.target.find(part) != std::string::npos) ++counts[l.fault];
  return counts;
}

LoaderOptions options() {
  LoaderOptions o;
  o.seed = 11;
  o.shuffle_buffer_bytes = 64 << 10;
  o.read_bytes = 16 << 10;  // many ranged GETs per shard: many draws of the proxy
  return o;
}

TEST(S3Loader, ShardUploadPutsShardsIndexesAndManifestOnTheServer) {
  const std::string manifest_url = upload_dataset("loader-upload");
  auto s3 = direct_s3();
  const Manifest manifest = manifest_from_json(read_object_direct(*s3, manifest_url), manifest_url);
  ASSERT_EQ(manifest.shards.size(), kShards);
  EXPECT_EQ(manifest.samples(), kSamples);
  std::set<std::string> listed;
  for (const ObjectInfo& o :
       s3->list(parse_url(std::string("s3://") + kBucket + "/loader-upload/")))
    listed.insert(o.url);
  std::set<std::string> expected{manifest_url};
  for (const ShardInfo& shard : manifest.shards) {
    expected.insert(resolve_url(manifest_url, shard.url));
    expected.insert(
        resolve_url(manifest_url, shard.index_url.empty() ? shard.url + ".idx" : shard.index_url));
    const ObjectInfo info = s3->stat(parse_url(shard.url));
    EXPECT_EQ(info.size, shard.size) << shard.url;
    EXPECT_EQ(sha256_of(read_object_direct(*s3, shard.url)), shard.sha256) << shard.url;
  }
  EXPECT_EQ(listed, expected);
}

// The issue's fault test: 3 ranks read 2 epochs of the uploaded dataset
// through resets, 503 SlowDown and truncated bodies; the Sources retry and
// resume, and the loader's sequence is exactly that of a clean read.
TEST(S3Loader, ThreeRanksGetEverySampleOncePerEpochThroughInjectedFaults) {
  const std::string manifest = upload_dataset("loader-faults");
  use_s3_through_fault_proxy();
  const auto seen = read_epochs({.manifest = manifest}, 3, 2, options());
  expect_each_sample_once_per_epoch(seen, 2);
  // Shuffled per epoch: the two epochs of rank 0 differ in order.
  std::vector<std::uint64_t> e0, e1;
  for (const Seen& s : seen[0][0]) e0.push_back(s.id);
  for (const Seen& s : seen[0][1]) e1.push_back(s.id);
  EXPECT_NE(e0, e1);
  // The proxy draws from a fixed seed, 5% of each kind per request; this
  // test alone sends it ~470 requests (see the proxy's log), so every kind
  // is met (a run without one would test nothing: it fails).
  auto faults = faults_for("/loader-faults/");
  for (const char* kind : {"reset", "slowdown", "truncate"}) EXPECT_GT(faults[kind], 0) << kind;
  EXPECT_GT(faults["none"], 0);
}

// The same samples whether the dataset is named by its manifest, by the
// prefix its shards share (ListObjectsV2) or by a brace pattern.
TEST(S3Loader, PrefixAndBracePatternNameTheSameDatasetAsTheManifest) {
  const std::string manifest = upload_dataset("loader-named");
  use_s3_through_fault_proxy();
  const Dataset by_manifest = open_dataset({.manifest = manifest});
  const std::string base = std::string("s3://") + kBucket + "/loader-named/";
  const Dataset by_prefix = open_dataset({.prefix = base});
  const Dataset by_pattern = open_dataset({.pattern = base + "t-{000000..000007}.tar"});
  EXPECT_EQ(by_prefix.shards.size(), kShards);
  EXPECT_EQ(by_pattern.shards.size(), kShards);
  EXPECT_EQ(by_prefix.digest, by_manifest.digest);
  EXPECT_EQ(by_pattern.digest, by_manifest.digest);
  EXPECT_EQ(by_prefix.samples, kSamples);
  expect_each_sample_once_per_epoch(read_epochs({.prefix = base}, 2, 1, options()), 1);
  expect_each_sample_once_per_epoch(
      read_epochs({.pattern = base + "t-{000000..000007}.tar"}, 2, 1, options()), 1);
}

// Two loaders on one node (two trials: threads here, each its own group of
// one) share a cache directory: each shard is downloaded once, and both
// read every sample. A download is one GET the proxy passed untouched (a
// faulted attempt is followed by a retry that resumes where it stopped).
TEST(S3Loader, NodeLocalCacheDownloadsEachShardOnceForTwoLoaders) {
  const std::string manifest = upload_dataset("loader-cached");
  use_s3_through_fault_proxy();
  TempDir cache;
  LoaderOptions o = options();
  o.cache_dir = cache.str();
  const std::size_t first_line = proxy_log().size();
  std::vector<std::vector<std::vector<Seen>>> trials[2];
  std::thread a([&] { trials[0] = read_epochs({.manifest = manifest}, 1, 2, o); });
  std::thread b([&] { trials[1] = read_epochs({.manifest = manifest}, 1, 2, o); });
  a.join();
  b.join();
  for (const auto& seen : trials) expect_each_sample_once_per_epoch(seen, 2);
  std::map<std::string, int> downloads;
  const auto lines = proxy_log();
  for (std::size_t i = first_line; i < lines.size(); ++i) {
    const ProxyLine& l = lines[i];
    if (l.method == "GET" && l.fault == "none" &&
        l.target.find("/loader-cached/t-") != std::string::npos && l.target.ends_with(".tar"))
      ++downloads[l.target];
  }
  EXPECT_EQ(downloads.size(), kShards);
  for (const auto& [target, n] : downloads) EXPECT_EQ(n, 1) << target;
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(cache.str()))
    files += e.path().extension() == ".shard";
  EXPECT_EQ(files, kShards);
}

TEST(S3Loader, MissingObjectIsAnErrorNamingTheUrl) {
  upload_dataset("loader-partial");
  use_s3_through_fault_proxy();
  const std::string base = std::string("s3://") + kBucket + "/loader-partial/";
  for (const std::string& missing : {base + "none.manifest.json", base + "t-000009.tar"}) {
    const std::string what = error_of([&] {
      if (missing.ends_with(".tar"))
        open_dataset({.urls = {base + "t-000000.tar", missing}});
      else
        open_dataset({.manifest = missing});
    });
    EXPECT_NE(what.find(missing), std::string::npos) << what;
    EXPECT_NE(what.find("404"), std::string::npos) << what;
    EXPECT_EQ(what.find("s3rver-secret"), std::string::npos) << what;
  }
  // A pattern that reaches past the shards names a missing one.
  const std::string what =
      error_of([&] { open_dataset({.pattern = base + "t-{000000..000009}.tar"}); });
  EXPECT_TRUE(what.find(base + "t-000008.tar") != std::string::npos ||
              what.find(base + "t-000009.tar") != std::string::npos)
      << what;
}

// Shards replaced on the server after the dataset was opened (another
// upload to the same prefix) are detected by their ETag (If-Match), not
// read as a mix of two datasets; the error names the shard.
TEST(S3Loader, ShardReplacedAfterOpeningIsAnErrorNamingIt) {
  const std::string manifest = upload_dataset("loader-replaced");
  use_s3_through_fault_proxy();
  const Dataset dataset = open_dataset({.manifest = manifest});
  auto s3 = direct_s3();
  for (std::size_t i = 0; i < dataset.shards.size(); ++i) {
    const std::string& url = dataset.shards[i].object.url;
    s3->put(parse_url(url), read_object_direct(*s3, url) + std::string(512, '\0'));
  }
  ShardedLoader loader(dataset, options());
  const std::string what = error_of([&] {
    while (loader.next()) {
    }
  });
  EXPECT_NE(what.find("changed"), std::string::npos) << what;
  EXPECT_NE(what.find(std::string("s3://") + kBucket + "/loader-replaced/t-"), std::string::npos)
      << what;
}

// Google Cloud Storage (gs://): the S3 client on GCS's XML API with HMAC
// keys, configured from GOOGLE_* and GCS_ENDPOINT_URL (here s3rver and the
// fault proxy "loader"), never from AWS_*.
constexpr const char* kGcsSecret = "gcs-secret-never-shown-5d2b";

std::string gcs_env(const std::string& endpoint) {
  return "env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_ENDPOINT_URL GCS_ENDPOINT_URL=" +
         endpoint + " GOOGLE_ACCESS_KEY_ID=S3RVER GOOGLE_SECRET_ACCESS_KEY=" + kGcsSecret + " ";
}

void use_gcs_through_fault_proxy() {
  for (const char* v : {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"})
    unsetenv(v);
  setenv("GCS_ENDPOINT_URL", state_file("loader_endpoint").c_str(), 1);
  setenv("GOOGLE_ACCESS_KEY_ID", "S3RVER", 1);
  setenv("GOOGLE_SECRET_ACCESS_KEY", kGcsSecret, 1);
}

TEST(GcsLoader, ShardUploadToGsThenThreeRanksGetEverySampleOncePerEpochThroughFaults) {
  std::string printed;
  const std::string manifest = upload_dataset("gcs-loader", "gs", &printed);
  EXPECT_EQ(manifest, "gs://xpscale-test/gcs-loader/t.manifest.json");
  EXPECT_EQ(printed.find(kGcsSecret), std::string::npos) << printed;
  use_gcs_through_fault_proxy();
  // Named by the manifest, the prefix (listing) and a brace pattern alike.
  const std::string base = "gs://xpscale-test/gcs-loader/";
  const Dataset by_manifest = open_dataset({.manifest = manifest});
  const Dataset by_prefix = open_dataset({.prefix = base});
  ASSERT_EQ(by_manifest.shards.size(), kShards);
  EXPECT_EQ(by_prefix.digest, by_manifest.digest);
  for (const DatasetShard& shard : by_manifest.shards)
    EXPECT_TRUE(shard.object.url.starts_with(base)) << shard.object.url;
  const auto seen = read_epochs({.manifest = manifest}, 3, 2, options());
  expect_each_sample_once_per_epoch(seen, 2);
  auto faults = faults_for("/gcs-loader/");
  for (const char* kind : {"reset", "slowdown", "truncate"}) EXPECT_GT(faults[kind], 0) << kind;
  expect_each_sample_once_per_epoch(
      read_epochs({.pattern = base + "t-{000000..000007}.tar"}, 2, 1, options()), 1);
  const std::string missing = base + "none.manifest.json";
  const std::string what = error_of([&] { open_dataset({.manifest = missing}); });
  EXPECT_NE(what.find(missing), std::string::npos) << what;
  EXPECT_NE(what.find("404"), std::string::npos) << what;
  EXPECT_EQ(what.find(kGcsSecret), std::string::npos) << what;
}

// A service-account key (GOOGLE_APPLICATION_CREDENTIALS) and no HMAC key:
// xpscale signs a JWT with the key, trades it at the key's token_uri for an
// OAuth2 token (gcs_oauth_server.py checks the signature and claims) and
// sends it as a bearer token; one token serves a whole process.
TEST(GcsLoader, ServiceAccountKeyUploadsAndReadsThroughBearerTokens) {
  const std::string key_file = state_dir() + "/oauth_key.json";
  const std::string endpoint = state_file("oauth_endpoint");
  TempDir dir;
  {
    std::ofstream csv(dir.str() + "/t.csv");
    csv << "id,pad\n";
    for (std::uint64_t i = 0; i < kSamples; ++i) csv << i << ',' << pad_of(i) << '\n';
  }
  const std::string env =
      "env -u GOOGLE_ACCESS_KEY_ID -u GOOGLE_SECRET_ACCESS_KEY BOTO_CONFIG=/dev/null "
      "GCS_ENDPOINT_URL=" +
      endpoint + " GOOGLE_APPLICATION_CREDENTIALS=" + key_file + " ";
  const Result r = run(env + XPSCALE_BIN + " shard " + dir.str() + "/t.csv --out " + dir.str() +
                       "/out --shards 4 --upload gs://xpscale-test/gcs-oauth");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.find("PRIVATE KEY"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("ya29."), std::string::npos) << r.output;

  for (const char* v : {"GOOGLE_ACCESS_KEY_ID", "GOOGLE_SECRET_ACCESS_KEY"}) unsetenv(v);
  setenv("BOTO_CONFIG", "/dev/null", 1);
  setenv("GCS_ENDPOINT_URL", endpoint.c_str(), 1);
  setenv("GOOGLE_APPLICATION_CREDENTIALS", key_file.c_str(), 1);
  expect_each_sample_once_per_epoch(
      read_epochs({.manifest = "gs://xpscale-test/gcs-oauth/t.manifest.json"}, 2, 1, options()), 1);

  std::ifstream log(state_dir() + "/oauth.log");
  int tokens = 0, requests = 0;
  for (std::string line; std::getline(log, line);) {
    // (KeyFilesThatCannotLogInAreClearErrors's refusals may be logged too.)
    tokens += line == "token OK";
    if (line.find("/gcs-oauth/") == std::string::npos) continue;
    ++requests;
    EXPECT_FALSE(line.ends_with(" 401")) << line;
  }
  EXPECT_EQ(tokens, 2);  // one for `xpscale shard`, one for this process
  EXPECT_GT(requests, 9);
}

// Key files that cannot log in are errors of `xpscale shard` (status 2)
// naming the file, never its private key: a gcloud user login, and a key
// the token endpoint refuses (signed by another private key).
TEST(GcsLoader, KeyFilesThatCannotLogInAreClearErrors) {
  TempDir dir;
  std::ofstream(dir.str() + "/t.csv") << "id,pad\n1,a\n";
  std::ofstream(dir.str() + "/user.json")
      << R"({"type": "authorized_user", "client_id": "x", "client_secret": "user-secret-0c1d",
             "refresh_token": "r"})";
  Result other = run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048");
  ASSERT_EQ(other.status, 0) << other.output;
  std::ifstream real(state_dir() + "/oauth_key.json");
  nlohmann::json key = nlohmann::json::parse(real);
  key["private_key"] = other.output;
  std::ofstream(dir.str() + "/other.json") << key.dump();
  const std::string other_key_body = other.output.substr(40, 40);

  for (const std::string name : {"user.json", "other.json", "missing.json"}) {
    SCOPED_TRACE(name);
    const Result r =
        run("env -u GOOGLE_ACCESS_KEY_ID -u GOOGLE_SECRET_ACCESS_KEY "
            "BOTO_CONFIG=/dev/null GCS_ENDPOINT_URL=" +
            state_file("oauth_endpoint") + " GOOGLE_APPLICATION_CREDENTIALS=" + dir.str() + "/" +
            name + " " + XPSCALE_BIN + " shard " + dir.str() + "/t.csv --out " + dir.str() +
            "/out-" + name + " --shards 1 --upload gs://xpscale-test/gcs-refused");
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_NE(r.output.find(dir.str() + "/" + name), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("user-secret-0c1d"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find(other_key_body), std::string::npos) << r.output;
    if (name == "user.json") {
      EXPECT_NE(r.output.find("HMAC"), std::string::npos) << r.output;
    }
    if (name == "other.json") {
      EXPECT_NE(r.output.find("invalid_grant"), std::string::npos) << r.output;
    }
  }
}

// Tokens that live 4 s (the oauth_short server, which refuses them after
// that): the Source renews each one halfway through its life, so that 16
// threads listing for 7 s never send an expired token, and they share
// each renewal rather than each making its own.
TEST(GcsLoader, ShortLivedTokensAreRenewedBeforeTheyExpire) {
  for (const char* v : {"GOOGLE_ACCESS_KEY_ID", "GOOGLE_SECRET_ACCESS_KEY"}) unsetenv(v);
  setenv("BOTO_CONFIG", "/dev/null", 1);
  setenv("GCS_ENDPOINT_URL", state_file("oauth_short_endpoint").c_str(), 1);
  setenv("GOOGLE_APPLICATION_CREDENTIALS", (state_dir() + "/oauth_short_key.json").c_str(), 1);
  auto gcs = make_s3_source(gcs_options_from_env());
  gcs->put(Url{"gs", "xpscale-test", "gcs-short/a.bin"}, "renewed");
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(7);
  std::vector<std::thread> threads;
  std::atomic<int> lists{0}, failures{0};
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&] {
      while (std::chrono::steady_clock::now() < until) {
        try {
          if (gcs->list(Url{"gs", "xpscale-test", "gcs-short/"}).size() != 1) ++failures;
        } catch (const std::exception&) {
          ++failures;
        }
        ++lists;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(lists.load(), 100);
  std::ifstream log(state_dir() + "/oauth_short.log");
  int tokens = 0, unauthorized = 0;
  for (std::string line; std::getline(log, line);) {
    tokens += line == "token OK";
    unauthorized += line.ends_with(" 401");
  }
  EXPECT_EQ(unauthorized, 0);
  // One at the start, then one every 2 s: 4 or 5, not one per thread.
  EXPECT_GE(tokens, 3);
  EXPECT_LE(tokens, 6);
}

}  // namespace
}  // namespace xpscale
