#pragma once
// Reading IDX files, the format of MNIST and Fashion-MNIST
// (http://yann.lecun.com/exdb/mnist/): a 4-byte magic (0, 0, type, number
// of dimensions), one big-endian uint32 per dimension, then the elements
// in row-major order. Only the unsigned-byte type (0x08) is supported,
// which is what both data sets use. Written here because no packaged
// library reads IDX; zlib does the decompression.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "xpscale/core/error.h"

namespace fmnist {

// A file that cannot be read or is not the IDX file the caller expected.
// The message names the file and what is wrong with it.
class IdxError : public xpscale::Error {
 public:
  using xpscale::Error::Error;
};

struct IdxArray {
  std::vector<std::uint32_t> dims;  // outermost first: {60000, 28, 28}
  std::vector<std::uint8_t> data;   // product(dims) elements

  std::size_t count() const { return dims.empty() ? 0 : dims.front(); }
  // Elements per item: the product of all dims but the first (1 for labels).
  std::size_t item_size() const;
};

// Parses the bytes of an IDX file. `name` is used in error messages only.
// Throws IdxError on a bad magic, an unsupported type, a header or body
// shorter than the header promises, or trailing bytes.
IdxArray parse_idx(std::span<const std::uint8_t> bytes, std::string_view name);

// Reads and parses `file`, gzip-compressed or not (zlib reads both).
// Throws IdxError naming the file when it cannot be opened or decompressed.
IdxArray read_idx(const std::filesystem::path& file);

// Encodes `array` as IDX bytes (the inverse of parse_idx), for tests and
// tools that write small data sets.
std::vector<std::uint8_t> encode_idx(const IdxArray& array);

}  // namespace fmnist
