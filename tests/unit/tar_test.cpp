// The tar reader and writer, index sidecars and manifests.
#include "xpscale/sharding/tar.h"

#include <gtest/gtest.h>

#include <fstream>

#include "sharding_test_util.h"
#include "xpscale/sharding/error.h"
#include "xpscale/sharding/manifest.h"
#include "xpscale/sharding/shard_index.h"
#include "xpscale/sharding/source.h"

namespace xpscale {
namespace {

std::string two_samples() {
  TarWriter tar;
  tar.add("a.u8", std::string(784, 'x'));
  tar.add("a.cls", "3");
  tar.add("b.u8", std::string(784, 'y'));
  tar.add("b.cls", "7");
  return tar.finish();
}

std::vector<Sample> parse_all(std::string_view bytes, const std::string& url = "mem.tar") {
  std::vector<Sample> out;
  parse_samples(bytes, url, 0, [&](Sample&& s) { out.push_back(std::move(s)); });
  return out;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ShardingError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Tar, ConsecutiveEntriesWithOneKeyAreOneSample) {
  const auto samples = parse_all(two_samples());
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(samples[0].key, "a");
  EXPECT_EQ(samples[0].field("cls"), "3");
  EXPECT_EQ(samples[0].field("u8"), std::string(784, 'x'));
  EXPECT_EQ(samples[1].key, "b");
  EXPECT_EQ(samples[1].field("cls"), "7");
  EXPECT_EQ(error_of([&] { (void)samples[1].field("png"); }),
            "sample 'b' has no field 'png' (it has 'u8', 'cls')");
}

TEST(Tar, KeyIsThePathUpToTheFirstDotOfTheFileName) {
  std::string_view key, ext;
  split_sample_name("train.v2/000042.seg.png", key, ext);
  EXPECT_EQ(key, "train.v2/000042");
  EXPECT_EQ(ext, "seg.png");
}

TEST(Tar, LongNamesRoundTripThroughPaxRecords) {
  const std::string name = std::string(150, 'd') + "/sample.txt";
  TarWriter tar;
  tar.add(name, "hello");
  const auto samples = parse_all(tar.finish());
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_EQ(samples[0].key, std::string(150, 'd') + "/sample");
  EXPECT_EQ(samples[0].field("txt"), "hello");
}

TEST(Tar, FedOneByteAtATimeGivesTheSameEntries) {
  const std::string bytes = two_samples();
  std::vector<std::string> names, data;
  TarStreamParser parser("mem.tar", 0, [&](const TarEntry& e, std::string_view d) {
    names.push_back(e.name);
    data.emplace_back(d);
    return true;
  });
  for (char c : bytes) parser.feed(&c, 1);
  parser.finish();
  EXPECT_EQ(names, (std::vector<std::string>{"a.u8", "a.cls", "b.u8", "b.cls"}));
  EXPECT_EQ(data[3], "7");
  EXPECT_TRUE(parser.saw_end_of_archive());
}

TEST(Tar, BadHeaderChecksumNamesUrlEntryAndOffset) {
  std::string bytes = two_samples();
  // Entry 2 (a.cls) starts after a.u8's header and 1024 data bytes.
  bytes[1536 + 0] = 'z';  // its name's first byte: "z.cls"
  EXPECT_EQ(error_of([&] { parse_all(bytes, "file:///d/s.tar"); }),
            "file:///d/s.tar: entry 'z.cls' (header at byte offset 1536): bad header checksum "
            "(stored 006657, computed 006710)");
}

TEST(Tar, TruncatedDataNamesEntryAndBothOffsets) {
  const std::string bytes = two_samples().substr(0, 900);
  EXPECT_EQ(error_of([&] { parse_all(bytes, "file:///d/s.tar"); }),
            "file:///d/s.tar: truncated tar: entry 'a.u8' (header at byte offset 0) needs 784 "
            "data bytes from byte offset 512, the stream ends at byte offset 900 (in its data)");
}

TEST(Tar, TruncatedHeaderIsAnError) {
  const std::string bytes = two_samples().substr(0, 1536 + 100);
  EXPECT_EQ(error_of([&] { parse_all(bytes, "s.tar"); }),
            "s.tar: truncated tar: a partial header at byte offset 1536 (100 of 512 bytes), the "
            "stream ends at byte offset 1636");
}

TEST(ShardIndex, OffsetsPointAtEachSampleAndRoundTrip) {
  const std::string bytes = two_samples();
  const ShardIndex index = index_tar(bytes, "s.tar");
  ASSERT_EQ(index.samples(), 2u);
  EXPECT_EQ(index.offsets, (std::vector<std::uint64_t>{0, 2560, 5120}));
  // Seeking to sample 1 reads just it.
  const auto one =
      parse_all(std::string_view(bytes).substr(index.begin(1), index.end(1) - index.begin(1)));
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].key, "b");
  EXPECT_EQ(decode_index(encode_index(index), "s.idx").offsets, index.offsets);
  std::string broken = encode_index(index);
  broken.pop_back();
  EXPECT_EQ(error_of([&] { decode_index(broken, "s.idx"); }),
            "s.idx: not a valid shard index: it says 2 samples but holds 39 bytes");
}

TEST(ShardIndex, ScanningAFileThroughItsSourceMatchesTheWriter) {
  test::TempDir dir;
  const std::string path = (dir.path() / "s.tar").string();
  const Url url = parse_url(path);
  auto source = open_source(url);
  source->put(url, two_samples());
  EXPECT_EQ(scan_shard(*source, source->stat(url)).offsets, index_tar(two_samples(), path).offsets);
}

TEST(Manifest, RoundTripsWithRelativeUrlsAndChecksItsDigest) {
  Manifest m;
  m.shards = {{"train-000000.tar", "train-000000.tar.idx", 10, 5120, "ab"},
              {"train-000001.tar", "train-000001.tar.idx", 9, 4608, "cd"}};
  const std::string json = manifest_to_json(m);
  const Manifest back = manifest_from_json(json, "s3://bucket/fmnist/train.manifest.json");
  ASSERT_EQ(back.shards.size(), 2u);
  EXPECT_EQ(back.shards[1].url, "s3://bucket/fmnist/train-000001.tar");
  EXPECT_EQ(back.shards[1].index_url, "s3://bucket/fmnist/train-000001.tar.idx");
  EXPECT_EQ(back.shards[1].samples, 9u);
  EXPECT_EQ(back.shards[1].sha256, "cd");
  EXPECT_EQ(back.samples(), 19u);
  // The digest names the data, not where it lives.
  EXPECT_EQ(back.digest, dataset_digest(m.shards));
  std::string edited = json;
  edited.replace(edited.find("\"samples\": 9"), 12, "\"samples\": 8");
  EXPECT_NE(error_of([&] {
              manifest_from_json(edited, "m.json");
            }).find("m.json: digest: does not match"),
            std::string::npos);
  EXPECT_EQ(error_of([&] { manifest_from_json("{\"format\": 1}", "m.json"); }),
            "m.json: format: expected \"xpscale.manifest/1\"");
}

// A Source with only the required methods: read_into takes the default
// path through read().
class Forwarding final : public Source {
 public:
  explicit Forwarding(std::shared_ptr<Source> inner) : inner_(std::move(inner)) {}
  ObjectInfo stat(const Url& url) override { return inner_->stat(url); }
  std::vector<ObjectInfo> list(const Url& prefix) override { return inner_->list(prefix); }
  void put(const Url& url, std::string_view bytes) override { inner_->put(url, bytes); }
  void read(const ObjectInfo& object, std::uint64_t offset, std::uint64_t length,
            const ByteSink& sink) override {
    inner_->read(object, offset, length, sink);
  }

 private:
  std::shared_ptr<Source> inner_;
};

TEST(FileSource, ReadIntoFillsTheCallersBufferDirectlyOrThroughRead) {
  test::TempDir dir;
  const Url url = parse_url(dir.str() + "/x.bin");
  auto file = open_source(url);
  file->put(url, "0123456789");
  const ObjectInfo info = file->stat(url);
  Forwarding forwarding(file);
  for (Source* source : {file.get(), static_cast<Source*>(&forwarding)}) {
    char buffer[4] = {};
    source->read_into(info, 3, 4, buffer);
    EXPECT_EQ(std::string(buffer, 4), "3456");
    EXPECT_NE(error_of([&] { source->read_into(info, 8, 4, buffer); }).find("beyond its size 10"),
              std::string::npos);
  }
  file->put(url, "changed!");  // another size and mtime: not the object that was listed
  char buffer[4];
  EXPECT_NE(error_of([&] {
              file->read_into(info, 0, 4, buffer);
            }).find("the file changed since it was listed"),
            std::string::npos);
}

TEST(FileSource, ListsRecursivelySortedAndPutsAtomically) {
  test::TempDir dir;
  auto source = open_source(parse_url(dir.str()));
  source->put(parse_url(dir.str() + "/b/2.tar"), "two");
  source->put(parse_url(dir.str() + "/a.tar"), "one");
  const auto all = source->list(parse_url(dir.str() + "/"));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].url, "file://" + dir.str() + "/a.tar");
  EXPECT_EQ(all[1].url, "file://" + dir.str() + "/b/2.tar");
  EXPECT_EQ(all[1].size, 3u);
  std::string got;
  source->read(all[0], 1, 2, [&](const char* d, std::size_t n) {
    got.append(d, n);
    return true;
  });
  EXPECT_EQ(got, "ne");
  EXPECT_NE(error_of([&] {
              source->read(all[0], 2, 5, [](const char*, std::size_t) { return true; });
            }).find("are beyond its size 3"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              source->stat(parse_url(dir.str() + "/none.tar"));
            }).find("none.tar: stat failed"),
            std::string::npos);
  // One client per scheme and process, shared by every caller.
  EXPECT_EQ(open_source(parse_url("http://127.0.0.1:1/x")),
            open_source(parse_url("http://127.0.0.1:1/y")));
  // No temp files are left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                          std::filesystem::directory_iterator()),
            2);
}

}  // namespace
}  // namespace xpscale
