#pragma once
// WebDataset shards: POSIX tar (ustar, with pax 'x' and GNU 'L' long
// names) in which a sample is a run of consecutive regular files with the
// same key, the key being the path up to the first '.' of its last
// component ("train/000042.u8" and "train/000042.cls" are the fields "u8"
// and "cls" of sample "train/000042").
//
// Written by hand rather than on libarchive because the loader needs what
// libarchive's pull API does not give: parsing pushed chunks from a
// Source's byte sink (no thread or temp file per shard), the exact byte
// offset of every header (the index sidecar and resume seek to them), and
// errors that name the shard URL, the entry and the byte offset. The
// subset needed (ustar, pax path/size, GNU long names) is small.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xpscale {

inline constexpr std::size_t kTarBlock = 512;

// One regular file of a tar stream.
struct TarEntry {
  std::string name;                 // pax path / GNU long name / ustar prefix + name
  std::uint64_t header_offset = 0;  // first header block of the entry (pax/L included)
  std::uint64_t data_offset = 0;
  std::uint64_t size = 0;
};

// Called for every regular file with its complete data. Directories and
// other entry types are skipped. Returning false stops the parse.
using TarEntryCallback = std::function<bool(const TarEntry&, std::string_view data)>;

// A push parser: feed() it the bytes of a tar stream in order, in chunks
// of any size, then finish(). Entry data is handed over without a copy
// when a chunk holds it whole. Errors throw ShardingError naming `url`,
// the entry and the absolute byte offset (start_offset + position):
//   "<url>: entry 'a.cls' (header at byte offset 1024): bad header checksum
//    (stored 6543, computed 6544)"
//   "<url>: truncated tar: entry 'a.u8' (header at byte offset 0) needs 784
//    data bytes from byte offset 512, the stream ends at byte offset 900"
class TarStreamParser {
 public:
  // start_offset: where in the object the first fed byte lies (a header).
  // want_data: false skips file data (the callback gets an empty view),
  // which is all that index building needs.
  TarStreamParser(std::string url, std::uint64_t start_offset, TarEntryCallback on_entry,
                  bool want_data = true);

  // Returns false once the parse is over (end-of-archive blocks seen or the
  // callback said stop); later bytes are ignored.
  bool feed(const char* data, std::size_t size);
  // The stream ended. Throws if it ended inside a header, a long name or
  // an entry's data (padding included). A stream that stops at a header
  // boundary without end-of-archive blocks is accepted: ranged reads of
  // whole samples end like that; the index and the manifest's sizes catch
  // a shard cut at a boundary.
  void finish();

  // Absolute offset just past the last complete entry (and its padding).
  std::uint64_t end_offset() const { return entry_end_; }
  bool saw_end_of_archive() const { return done_ && end_marker_; }

 private:
  enum class State { kHeader, kData, kPadding };
  std::size_t consume_header(const char* data, std::size_t size);
  std::size_t consume_data(const char* data, std::size_t size);
  void start_entry(const char* block);
  void entry_complete(std::string_view data);
  std::string describe_current() const;
  [[noreturn]] void fail(const std::string& what) const;

  std::string url_;
  TarEntryCallback on_entry_;
  bool want_data_;
  State state_ = State::kHeader;
  std::uint64_t position_;                 // absolute offset of the next byte fed
  std::uint64_t entry_end_;                // absolute offset after the last finished entry
  std::string pending_;                    // a partial header or partial data
  char type_ = 0;                          // type flag of the current header
  std::uint64_t remaining_ = 0;            // data bytes still to come for the current header
  std::uint64_t padding_ = 0;              // padding bytes still to skip
  TarEntry entry_;                         // the entry being read
  bool entry_started_ = false;             // entry_.header_offset is set (pax/L seen)
  std::string long_name_;                  // from a pax 'x' path or GNU 'L' record
  std::optional<std::uint64_t> pax_size_;  // from a pax 'x' size record
  bool done_ = false, end_marker_ = false;
};

// A sample: the fields (files) of one key. The field bytes live in
// `storage`, shared with the buffer they were read into (no copy per
// sample); own() gives a sample its own copy, so that keeping it does not
// keep the whole read buffer alive.
struct Sample {
  struct Field {
    std::string ext;  // "u8", "cls", "json", ...
    std::string_view data;
  };
  std::string key;
  std::vector<Field> fields;
  std::shared_ptr<const void> storage;  // keeps the fields' bytes alive
  bool repeat = false;  // a repeat that evens out per-rank counts (or replaces a skipped sample)
  std::uint32_t shard = 0;  // position of its shard in the dataset
  std::uint64_t index = 0;  // position within its shard

  // The bytes of field `ext`; throws ShardingError naming the sample and
  // the fields it has when there is none.
  std::string_view field(std::string_view ext) const;
  bool has_field(std::string_view ext) const;
  std::size_t size() const;  // bytes of all fields
  void own();
};

// Splits "dir/000042.seg.png" into key "dir/000042" and ext "seg.png".
void split_sample_name(std::string_view name, std::string_view& key, std::string_view& ext);

// Parses `bytes`, which hold byte offsets [start_offset, ...) of shard
// `url` and start at a sample boundary: calls `emit` for each complete
// sample, in order, with `start` the byte offset of its first header. The
// samples' fields point into `bytes`, which `storage` keeps alive. The
// bytes must end at a sample boundary.
void parse_samples(const std::shared_ptr<const void>& storage, std::string_view bytes,
                   const std::string& url, std::uint64_t start_offset,
                   const std::function<void(Sample&&, std::uint64_t start)>& emit);
// The same for bytes the caller owns (the samples get a copy of them).
void parse_samples(std::string_view bytes, const std::string& url, std::uint64_t start_offset,
                   const std::function<void(Sample&&)>& emit);

// Builds tar streams in memory, deterministically (mtime 0, uid/gid 0,
// mode 0644), so that the same samples give the same bytes and sha256.
class TarWriter {
 public:
  // Appends one file; names over 100 bytes get a pax 'x' path record.
  void add(std::string_view name, std::string_view data);
  // Appends the two end-of-archive blocks and returns the stream.
  std::string finish();
  std::uint64_t size() const { return out_.size(); }

 private:
  void header(std::string_view name, std::uint64_t size, char type);
  std::string out_;
};

}  // namespace xpscale
