#include "xpscale/sharding/tar.h"

#include <algorithm>
#include <cstring>

#include "xpscale/core/text.h"
#include "xpscale/sharding/error.h"

namespace xpscale {

namespace {

// ustar header fields: offset and width.
constexpr std::size_t kNameOff = 0, kNameLen = 100;
constexpr std::size_t kModeOff = 100, kUidOff = 108, kGidOff = 116;
constexpr std::size_t kSizeOff = 124, kSizeLen = 12;
constexpr std::size_t kMtimeOff = 136;
constexpr std::size_t kChecksumOff = 148, kChecksumLen = 8;
constexpr std::size_t kTypeOff = 156;
constexpr std::size_t kMagicOff = 257;
constexpr std::size_t kPrefixOff = 345, kPrefixLen = 155;

std::string_view field_text(const char* block, std::size_t off, std::size_t len) {
  const char* begin = block + off;
  return {begin, strnlen(begin, len)};
}

// A name for error messages: printable ASCII, other bytes as \xNN, cut short.
std::string printable(std::string_view name) { return escaped(name, 120, Escape::kNonAscii); }

// An octal field (NUL/space padded) or, for sizes, GNU base-256 (high
// bit of the first byte set). Returns false when it is neither.
bool parse_number(const char* field, std::size_t len, std::uint64_t& value) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(field);
  value = 0;
  if (bytes[0] & 0x80) {
    if (bytes[0] != 0x80) return false;  // negative or > 2^63: not a size we accept
    for (std::size_t i = 1; i < len; ++i) {
      if (value >> 56) return false;
      value = (value << 8) | bytes[i];
    }
    return true;
  }
  std::size_t i = 0;
  while (i < len && bytes[i] == ' ') ++i;
  bool digits = false;
  for (; i < len && bytes[i] >= '0' && bytes[i] <= '7'; ++i) {
    if (value >> 61) return false;
    value = (value << 3) | (bytes[i] - '0');
    digits = true;
  }
  for (; i < len; ++i)
    if (bytes[i] != ' ' && bytes[i] != 0) return false;
  return digits;
}

// The unsigned sum of the header with its checksum field read as spaces:
// the whole block summed (a loop the compiler vectorises), then the field
// swapped for spaces. It runs once per entry, so once per small sample.
std::uint64_t header_checksum(const char* block) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(block);
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i < kTarBlock; ++i) sum += bytes[i];
  for (std::size_t i = kChecksumOff; i < kChecksumOff + kChecksumLen; ++i) sum -= bytes[i];
  return sum + kChecksumLen * ' ';
}

bool all_zero(const char* block) {
  return std::all_of(block, block + kTarBlock, [](char c) { return c == 0; });
}

bool is_regular(char type) { return type == '0' || type == 0 || type == '7'; }
bool is_metadata(char type) { return type == 'x' || type == 'L'; }

// Reads "path" (and "size") from pax records "LEN key=value\n".
void parse_pax(std::string_view records, std::string& path, std::uint64_t& size, bool& has_size) {
  while (!records.empty()) {
    const std::size_t space = records.find(' ');
    if (space == std::string_view::npos) return;
    std::uint64_t len = 0;
    for (char c : records.substr(0, space)) {
      if (c < '0' || c > '9') return;
      len = len * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (len <= space + 1 || len > records.size()) return;
    std::string_view record = records.substr(space + 1, len - space - 2);  // without '\n'
    const std::size_t eq = record.find('=');
    if (eq != std::string_view::npos) {
      const std::string_view key = record.substr(0, eq), value = record.substr(eq + 1);
      if (key == "path") path = std::string(value);
      if (key == "size") {
        std::uint64_t v = 0;
        for (char c : value) v = v * 10 + static_cast<std::uint64_t>(c - '0');
        size = v;
        has_size = true;
      }
    }
    records.remove_prefix(len);
  }
}

}  // namespace

TarStreamParser::TarStreamParser(std::string url, std::uint64_t start_offset,
                                 TarEntryCallback on_entry, bool want_data)
    : url_(std::move(url)),
      on_entry_(std::move(on_entry)),
      want_data_(want_data),
      position_(start_offset),
      entry_end_(start_offset) {}

void TarStreamParser::fail(const std::string& what) const {
  throw ShardingError(url_ + ": " + what);
}

std::string TarStreamParser::describe_current() const {
  return "entry '" + printable(entry_.name) + "' (header at byte offset " +
         std::to_string(entry_.header_offset) + ")";
}

bool TarStreamParser::feed(const char* data, std::size_t size) {
  while (size > 0 && !done_) {
    std::size_t used = 0;
    switch (state_) {
      case State::kHeader:
        used = consume_header(data, size);
        break;
      case State::kData:
        used = consume_data(data, size);
        break;
      case State::kPadding:
        used = static_cast<std::size_t>(std::min<std::uint64_t>(padding_, size));
        padding_ -= used;
        if (padding_ == 0) {
          state_ = State::kHeader;
          if (!entry_started_) entry_end_ = position_ + used;
        }
        break;
    }
    position_ += used;
    data += used;
    size -= used;
  }
  return !done_;
}

std::size_t TarStreamParser::consume_header(const char* data, std::size_t size) {
  if (pending_.empty() && size >= kTarBlock) {
    start_entry(data);
    return kTarBlock;
  }
  const std::size_t take = std::min(size, kTarBlock - pending_.size());
  pending_.append(data, take);
  if (pending_.size() == kTarBlock) {
    const std::string block = std::move(pending_);
    pending_.clear();
    // position_ is still the offset of the block's first fed byte of this
    // call; start_entry needs the block's own start.
    const std::uint64_t saved = position_;
    position_ = position_ + take - kTarBlock;
    start_entry(block.data());
    position_ = saved;
  }
  return take;
}

// Decodes the header block starting at absolute offset position_.
void TarStreamParser::start_entry(const char* block) {
  const std::uint64_t offset = position_;
  if (all_zero(block)) {
    if (entry_started_)
      fail(describe_current() + ": end-of-archive block after a long-name record");
    done_ = end_marker_ = true;
    return;
  }
  const std::string_view raw_name = field_text(block, kNameOff, kNameLen);
  std::uint64_t stored = 0;
  const std::uint64_t computed = header_checksum(block);
  if (!parse_number(block + kChecksumOff, kChecksumLen, stored) || stored != computed) {
    if (offset == 0 && std::memcmp(block, "\x1f\x8b", 2) == 0)
      fail(
          "byte offset 0: gzip data in a shard whose name does not end in .gz or .tgz; "
          "rename it, or write it uncompressed");
    if (offset == 0 && std::memcmp(block + 257, "ustar", 5) != 0)
      fail("byte offset 0: not a tar file (its first 512 bytes are no tar header)");
    fail("entry '" + printable(raw_name) + "' (header at byte offset " + std::to_string(offset) +
         "): bad header checksum (stored " +
         printable(field_text(block, kChecksumOff, kChecksumLen)) + ", computed " +
         [&] {
           char buf[24];
           std::snprintf(buf, sizeof buf, "%06llo", static_cast<unsigned long long>(computed));
           return std::string(buf);
         }() +
         ")");
  }
  if (!entry_started_) {
    entry_.header_offset = offset;
    entry_started_ = true;
  }
  type_ = block[kTypeOff];
  std::uint64_t size = 0;
  if (!parse_number(block + kSizeOff, kSizeLen, size))
    fail("entry '" + printable(raw_name) + "' (header at byte offset " + std::to_string(offset) +
         "): invalid size field");
  if (is_regular(type_)) {
    if (!long_name_.empty()) {
      entry_.name = std::move(long_name_);
      long_name_.clear();
    } else {
      const bool ustar = std::memcmp(block + kMagicOff, "ustar", 5) == 0;
      const std::string_view prefix =
          ustar ? field_text(block, kPrefixOff, kPrefixLen) : std::string_view();
      entry_.name = prefix.empty() ? std::string(raw_name)
                                   : std::string(prefix) + "/" + std::string(raw_name);
    }
    if (pax_size_) size = *pax_size_;
  }
  pax_size_.reset();
  entry_.data_offset = offset + kTarBlock;
  entry_.size = size;
  remaining_ = size;
  padding_ = (kTarBlock - size % kTarBlock) % kTarBlock;
  if (is_metadata(type_) && size > (std::uint64_t{1} << 20))
    fail(describe_current() + ": long-name record of " + std::to_string(size) + " bytes");
  state_ = State::kData;
  if (remaining_ == 0) entry_complete({});
}

std::size_t TarStreamParser::consume_data(const char* data, std::size_t size) {
  const bool keep = is_metadata(type_) || (is_regular(type_) && want_data_);
  if (!keep) {
    const auto used = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, size));
    remaining_ -= used;
    if (remaining_ == 0) entry_complete({});
    return used;
  }
  if (pending_.empty() && size >= remaining_) {
    const auto used = static_cast<std::size_t>(remaining_);
    remaining_ = 0;
    entry_complete({data, used});
    return used;
  }
  const auto used = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, size));
  pending_.append(data, used);
  remaining_ -= used;
  if (remaining_ == 0) {
    const std::string whole = std::move(pending_);
    pending_.clear();
    entry_complete(whole);
  }
  return used;
}

void TarStreamParser::entry_complete(std::string_view data) {
  state_ = padding_ > 0 ? State::kPadding : State::kHeader;
  if (type_ == 'x') {
    bool has_size = false;
    std::uint64_t size = 0;
    parse_pax(data, long_name_, size, has_size);
    if (has_size) pax_size_ = size;
    return;
  }
  if (type_ == 'L') {
    long_name_.assign(data.data(), strnlen(data.data(), data.size()));
    return;
  }
  entry_started_ = false;
  if (state_ == State::kHeader) entry_end_ = entry_.data_offset + entry_.size;
  if (is_regular(type_) && !on_entry_(entry_, data)) done_ = true;
}

void TarStreamParser::finish() {
  if (done_) return;
  if (state_ == State::kHeader && pending_.empty() && !entry_started_) return;
  if (state_ == State::kHeader && !entry_started_) {
    fail("truncated tar: a partial header at byte offset " +
         std::to_string(position_ - pending_.size()) + " (" + std::to_string(pending_.size()) +
         " of 512 bytes), the stream ends at byte offset " + std::to_string(position_));
  }
  const std::string what = state_ == State::kPadding ? "padding" : "data";
  fail("truncated tar: " + describe_current() + " needs " + std::to_string(entry_.size) +
       " data bytes from byte offset " + std::to_string(entry_.data_offset) +
       ", the stream ends at byte offset " + std::to_string(position_) + " (in its " + what + ")");
}

void split_sample_name(std::string_view name, std::string_view& key, std::string_view& ext) {
  const std::size_t slash = name.rfind('/');
  const std::size_t base = slash == std::string_view::npos ? 0 : slash + 1;
  const std::size_t dot = name.find('.', base);
  if (dot == std::string_view::npos) {
    key = name;
    ext = {};
  } else {
    key = name.substr(0, dot);
    ext = name.substr(dot + 1);
  }
}

bool Sample::has_field(std::string_view ext) const {
  return std::any_of(fields.begin(), fields.end(), [&](const Field& f) { return f.ext == ext; });
}

std::string_view Sample::field(std::string_view ext) const {
  for (const Field& f : fields)
    if (f.ext == ext) return f.data;
  std::string have;
  for (const Field& f : fields) have += (have.empty() ? "'" : ", '") + f.ext + "'";
  throw ShardingError("sample '" + key + "' has no field '" + std::string(ext) + "' (it has " +
                      (have.empty() ? "none" : have) + ")");
}

std::size_t Sample::size() const {
  std::size_t n = 0;
  for (const Field& f : fields) n += f.data.size();
  return n;
}

void Sample::own() {
  auto copy = std::make_shared<std::string>();
  copy->reserve(size());
  for (const Field& f : fields) copy->append(f.data);
  std::size_t at = 0;
  for (Field& f : fields) {
    f.data = std::string_view(*copy).substr(at, f.data.size());
    at += f.data.size();
  }
  storage = std::move(copy);
}

void parse_samples(const std::shared_ptr<const void>& storage, std::string_view bytes,
                   const std::string& url, std::uint64_t start_offset,
                   const std::function<void(Sample&&, std::uint64_t start)>& emit) {
  Sample current;
  std::uint64_t current_start = 0;
  TarStreamParser parser(url, start_offset, [&](const TarEntry& entry, std::string_view data) {
    std::string_view key, ext;
    split_sample_name(entry.name, key, ext);
    if (!current.fields.empty() && key != current.key) {
      emit(std::move(current), current_start);
      current = Sample();
    }
    if (current.fields.empty()) {
      current.key = std::string(key);
      current.storage = storage;
      current_start = entry.header_offset;
    }
    current.fields.push_back({std::string(ext), data});
    return true;
  });
  // One feed of the whole range: the parser then hands every entry's data
  // over as a view into the buffer, never through its own pending copy.
  parser.feed(bytes.data(), bytes.size());
  parser.finish();
  if (!current.fields.empty()) emit(std::move(current), current_start);
}

void parse_samples(std::string_view bytes, const std::string& url, std::uint64_t start_offset,
                   const std::function<void(Sample&&)>& emit) {
  const auto copy = std::make_shared<const std::string>(bytes);
  parse_samples(copy, *copy, url, start_offset,
                [&](Sample&& s, std::uint64_t) { emit(std::move(s)); });
}

void TarWriter::header(std::string_view name, std::uint64_t size, char type) {
  char block[kTarBlock] = {};
  std::memcpy(block + kNameOff, name.data(), std::min(name.size(), kNameLen));
  std::snprintf(block + kModeOff, 8, "%07o", 0644);
  std::snprintf(block + kUidOff, 8, "%07o", 0);
  std::snprintf(block + kGidOff, 8, "%07o", 0);
  std::snprintf(block + kSizeOff, kSizeLen, "%011llo", static_cast<unsigned long long>(size));
  std::snprintf(block + kMtimeOff, 12, "%011o", 0);
  block[kTypeOff] = type;
  std::memcpy(block + kMagicOff,
              "ustar\0"
              "00",
              8);
  // At most 512 * 255 < 8^6: six octal digits always hold it (the mask
  // tells the compiler so).
  std::snprintf(block + kChecksumOff, kChecksumLen, "%06llo",
                static_cast<unsigned long long>(header_checksum(block) & 0777777u));
  block[kChecksumOff + 7] = ' ';
  out_.append(block, kTarBlock);
}

void TarWriter::add(std::string_view name, std::string_view data) {
  if (name.size() > kNameLen) {
    // "LEN path=NAME\n", LEN counting its own digits.
    const std::string body = " path=" + std::string(name) + "\n";
    std::size_t len = body.size() + 1;
    while (std::to_string(len).size() + body.size() != len) ++len;
    const std::string record = std::to_string(len) + body;
    header("././@PaxHeader", record.size(), 'x');
    out_ += record;
    out_.append((kTarBlock - record.size() % kTarBlock) % kTarBlock, '\0');
  }
  header(name, data.size(), '0');
  out_.append(data);
  out_.append((kTarBlock - data.size() % kTarBlock) % kTarBlock, '\0');
}

std::string TarWriter::finish() {
  out_.append(2 * kTarBlock, '\0');
  return std::move(out_);
}

}  // namespace xpscale
