#include "fmnist/idx.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <numeric>

namespace fmnist {
namespace {

constexpr std::uint8_t kUnsignedByte = 0x08;
constexpr std::size_t kMaxDims = 8;

std::uint32_t read_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

std::string dims_text(const std::vector<std::uint32_t>& dims) {
  std::string s;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i) s += 'x';
    s += std::to_string(dims[i]);
  }
  return s;
}

std::string hex_byte(std::uint8_t b) {
  constexpr char kDigits[] = "0123456789abcdef";
  return std::string("0x") + kDigits[b >> 4] + kDigits[b & 0xf];
}

[[noreturn]] void fail(std::string_view name, const std::string& what) {
  throw IdxError(std::string(name) + ": " + what);
}

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

}  // namespace

std::size_t IdxArray::item_size() const {
  if (dims.size() < 2) return 1;
  return std::accumulate(dims.begin() + 1, dims.end(), std::size_t{1},
                         [](std::size_t a, std::uint32_t d) { return a * d; });
}

IdxArray parse_idx(std::span<const std::uint8_t> bytes, std::string_view name) {
  if (bytes.size() < 4)
    fail(name,
         "short file: " + std::to_string(bytes.size()) + " bytes, not even the 4-byte IDX magic");
  if (bytes[0] != 0 || bytes[1] != 0)
    fail(name, "bad magic: the first two bytes are " + std::to_string(bytes[0]) + " " +
                   std::to_string(bytes[1]) + ", expected 0 0 (not an IDX file?)");
  if (bytes[2] != kUnsignedByte)
    fail(name, "unsupported IDX element type " + hex_byte(bytes[2]) +
                   ", only unsigned bytes (0x08) are supported");
  const std::size_t ndims = bytes[3];
  if (ndims == 0 || ndims > kMaxDims)
    fail(name, "bad magic: " + std::to_string(ndims) + " dimensions (expected 1 to " +
                   std::to_string(kMaxDims) + ")");
  const std::size_t header = 4 + 4 * ndims;
  if (bytes.size() < header)
    fail(name, "short file: " + std::to_string(bytes.size()) + " bytes, the header of " +
                   std::to_string(ndims) + " dimensions needs " + std::to_string(header));
  IdxArray out;
  out.dims.resize(ndims);
  std::size_t elements = 1;
  for (std::size_t i = 0; i < ndims; ++i) {
    out.dims[i] = read_be32(bytes.data() + 4 + 4 * i);
    elements *= out.dims[i];
  }
  const std::size_t have = bytes.size() - header;
  if (have < elements)
    fail(name, "short file: dims " + dims_text(out.dims) + " need " + std::to_string(elements) +
                   " bytes of data, the file has " + std::to_string(have));
  if (have > elements)
    fail(name, "dims " + dims_text(out.dims) + " need " + std::to_string(elements) +
                   " bytes of data, but the file has " + std::to_string(have - elements) +
                   " bytes more (wrong dims in the header?)");
  out.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return out;
}

IdxArray read_idx(const std::filesystem::path& file) {
  const std::string name = file.string();
  errno = 0;
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(name.c_str(), "rb"));
  if (!f)
    fail(name, std::string("cannot open: ") + (errno ? std::strerror(errno) : "out of memory"));
  std::vector<std::uint8_t> bytes;
  constexpr unsigned kChunk = 1 << 20;
  for (;;) {
    const std::size_t at = bytes.size();
    bytes.resize(at + kChunk);
    const int n = gzread(f.get(), bytes.data() + at, kChunk);
    if (n < 0) {
      int code = 0;
      const char* msg = gzerror(f.get(), &code);
      fail(name, std::string("cannot read: ") + (code == Z_ERRNO ? std::strerror(errno)
                                                 : msg           ? msg
                                                                 : "zlib error"));
    }
    bytes.resize(at + static_cast<std::size_t>(n));
    if (n == 0) break;
  }
  // A gzip stream cut short reads as a clean end of file; zlib only says so
  // here (Z_BUF_ERROR), and a truncated download is worth naming.
  int code = 0;
  gzerror(f.get(), &code);
  if (code == Z_BUF_ERROR) fail(name, "truncated gzip stream (incomplete download?)");
  return parse_idx(bytes, name);
}

std::vector<std::uint8_t> encode_idx(const IdxArray& array) {
  std::vector<std::uint8_t> out = {0, 0, kUnsignedByte,
                                   static_cast<std::uint8_t>(array.dims.size())};
  for (const std::uint32_t d : array.dims) {
    for (int shift = 24; shift >= 0; shift -= 8)
      out.push_back(static_cast<std::uint8_t>(d >> shift));
  }
  out.insert(out.end(), array.data.begin(), array.data.end());
  return out;
}

}  // namespace fmnist
