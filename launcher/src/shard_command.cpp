// xpscale shard: turns a data set into WebDataset tar shards, index
// sidecars and a manifest (sharding/shard_writer.h) that the loader and
// the example sweeps read.
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "commands.h"
#include "xpscale/core/error.h"
#include "xpscale/sharding/error.h"
#include "xpscale/sharding/shard_writer.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace xpscale::cli {
namespace {

constexpr const char* kUsage =
    "usage: xpscale shard INPUT --out DIR|URL [--shards N] [--name NAME]\n"
    "                     [--from fmnist|csv|files] [--split train|test] [--range A:B]\n"
    "                     [--upload URL]...\n\n"
    "Writes INPUT as N WebDataset tar shards with index sidecars and a manifest:\n"
    "  OUT/NAME-000000.tar, OUT/NAME-000000.tar.idx, ..., OUT/NAME.manifest.json\n"
    "Point a sweep's data section at the manifest (data: {train: {manifest: ...}}).\n\n"
    "Inputs (--from, guessed from INPUT when left out):\n"
    "  fmnist  a directory of Fashion-MNIST/MNIST IDX files (plain or .gz); --split\n"
    "          train (default) or test; a sample is NNNNNN.u8 (784 pixel bytes)\n"
    "          and NNNNNN.cls (the label as text)\n"
    "  csv     a CSV file with a header row; a sample per row, a field per column\n"
    "          (NNNNNN.<column>, the cell's text)\n"
    "  files   a directory; files with the same path up to the first '.' of their\n"
    "          name are one sample (a/x.jpg + a/x.cls), fields named by the rest\n\n"
    "--range A:B keeps samples A to B-1 of the input (e.g. 0:55000 leaves the last\n"
    "5,000 Fashion-MNIST training images to validation, as the example does).\n"
    "--upload URL puts every object under URL as well (s3://bucket/prefix,\n"
    "gs://bucket/prefix, az://container/prefix, or another directory; credentials\n"
    "from the environment, see docs/object-storage.md). Errors exit with status 2.\n\n"
    "options";

struct Input {
  std::uint64_t samples = 0;
  SampleWriter write;
  std::string default_name;
};

std::string sample_key(std::uint64_t i) {
  char key[32];
  std::snprintf(key, sizeof key, "%06llu", static_cast<unsigned long long>(i));
  return key;
}

// IDX (the MNIST format) read through zlib, which reads gzip and plain
// files alike. Written here rather than shared with the example's reader:
// the launcher must not depend on examples/, and this is only what the
// shard writer needs (unsigned bytes, N items of equal size).
struct Idx {
  std::uint64_t items = 0, item_size = 1;
  std::vector<std::uint8_t> data;
};

Idx read_idx(const fs::path& file) {
  gzFile gz = gzopen(file.c_str(), "rb");
  if (gz == nullptr) throw UserError(file.string() + ": cannot open");
  std::vector<std::uint8_t> bytes;
  std::uint8_t buffer[1 << 16];
  int n;
  while ((n = gzread(gz, buffer, sizeof buffer)) > 0) bytes.insert(bytes.end(), buffer, buffer + n);
  int err = Z_OK;
  const std::string message = n < 0 ? gzerror(gz, &err) : "";
  gzclose(gz);
  if (n < 0) throw UserError(file.string() + ": cannot read: " + message);
  auto u32 = [&](std::size_t at) {
    return (std::uint32_t{bytes[at]} << 24) | (std::uint32_t{bytes[at + 1]} << 16) |
           (std::uint32_t{bytes[at + 2]} << 8) | bytes[at + 3];
  };
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08)
    throw UserError(file.string() + ": not an IDX file of unsigned bytes");
  const std::size_t dims = bytes[3];
  if (dims == 0 || bytes.size() < 4 + 4 * dims)
    throw UserError(file.string() + ": IDX header too short");
  Idx idx;
  idx.items = u32(4);
  for (std::size_t d = 1; d < dims; ++d) idx.item_size *= u32(4 + 4 * d);
  const std::size_t header = 4 + 4 * dims;
  if (bytes.size() - header != idx.items * idx.item_size)
    throw UserError(file.string() + ": IDX body holds " + std::to_string(bytes.size() - header) +
                    " bytes, the header promises " + std::to_string(idx.items * idx.item_size));
  idx.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return idx;
}

fs::path idx_file(const fs::path& dir, const std::string& stem) {
  for (const char* suffix : {"", ".gz"})
    if (fs::exists(dir / (stem + suffix))) return dir / (stem + suffix);
  throw UserError(dir.string() + ": no " + stem + " (or " + stem + ".gz) here");
}

Input fmnist_input(const fs::path& dir, const std::string& split) {
  if (split != "train" && split != "test")
    throw UserError("--split: expected train or test, got '" + split + "'");
  const std::string stem = split == "train" ? "train" : "t10k";
  auto images = std::make_shared<Idx>(read_idx(idx_file(dir, stem + "-images-idx3-ubyte")));
  auto labels = std::make_shared<Idx>(read_idx(idx_file(dir, stem + "-labels-idx1-ubyte")));
  if (images->items != labels->items || labels->item_size != 1)
    throw UserError(dir.string() + ": " + std::to_string(images->items) + " images but " +
                    std::to_string(labels->items) + " labels");
  Input in;
  in.samples = images->items;
  in.default_name = split;
  in.write = [images, labels](std::uint64_t i, TarWriter& tar) {
    const std::string key = sample_key(i);
    const auto* pixels = reinterpret_cast<const char*>(images->data.data() + i * images->item_size);
    tar.add(key + ".u8", std::string_view(pixels, images->item_size));
    tar.add(key + ".cls", std::to_string(labels->data[i]));
  };
  return in;
}

// RFC 4180 records (quoted fields, "" escapes, CRLF or LF). Hand-written:
// Debian's C++ CSV options are heavier than the 30 lines needed, and the
// errors here name the file and line.
std::vector<std::vector<std::string>> read_csv(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw UserError(file.string() + ": cannot open");
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  std::vector<std::vector<std::string>> rows(1);
  std::string cell;
  bool quoted = false, any = false;
  std::size_t line = 1;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        cell += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        if (c == '\n') ++line;
        cell += c;
      }
      continue;
    }
    if (c == '"' && cell.empty()) {
      quoted = any = true;
    } else if (c == ',') {
      rows.back().push_back(std::move(cell));
      cell.clear();
      any = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      if (any || !cell.empty()) {
        rows.back().push_back(std::move(cell));
        rows.emplace_back();
      }
      cell.clear();
      any = false;
      ++line;
    } else {
      cell += c;
      any = true;
    }
  }
  if (quoted) throw UserError(file.string() + ":" + std::to_string(line) + ": unterminated quote");
  if (any || !cell.empty()) rows.back().push_back(std::move(cell));
  if (rows.back().empty()) rows.pop_back();
  return rows;
}

Input csv_input(const fs::path& file) {
  auto rows = std::make_shared<std::vector<std::vector<std::string>>>(read_csv(file));
  if (rows->size() < 2)
    throw UserError(file.string() + ": needs a header row and at least one row");
  std::vector<std::string>& header = rows->front();
  for (std::size_t c = 0; c < header.size(); ++c) {
    std::string& name = header[c];
    if (name.empty())
      throw UserError(file.string() + ":1: column " + std::to_string(c + 1) + " has no name");
    std::replace_if(
        name.begin(), name.end(), [](char ch) { return ch == '/' || ch == '.'; }, '_');
  }
  for (std::size_t r = 1; r < rows->size(); ++r)
    if ((*rows)[r].size() != header.size())
      throw UserError(file.string() + ": row " + std::to_string(r + 1) + " has " +
                      std::to_string((*rows)[r].size()) + " cells, the header has " +
                      std::to_string(header.size()));
  Input in;
  in.samples = rows->size() - 1;
  in.default_name = file.stem().string();
  in.write = [rows](std::uint64_t i, TarWriter& tar) {
    const auto& row = (*rows)[i + 1];
    for (std::size_t c = 0; c < row.size(); ++c)
      tar.add(sample_key(i) + "." + rows->front()[c], row[c]);
  };
  return in;
}

Input files_input(const fs::path& dir) {
  // key -> its files (sorted), keys in sorted order.
  auto samples = std::make_shared<std::map<std::string, std::vector<fs::path>>>();
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string rel = fs::relative(e.path(), dir).generic_string();
    const std::size_t slash = rel.rfind('/');
    const std::size_t dot = rel.find('.', slash == std::string::npos ? 0 : slash + 1);
    if (dot == std::string::npos || dot + 1 == rel.size())
      throw UserError(e.path().string() + ": a file needs an extension to be a sample's field");
    (*samples)[rel.substr(0, dot)].push_back(e.path());
  }
  auto keys = std::make_shared<std::vector<std::string>>();
  for (auto& [key, files] : *samples) {
    std::sort(files.begin(), files.end());
    keys->push_back(key);
  }
  Input in;
  in.samples = keys->size();
  in.default_name =
      dir.filename().empty() ? dir.parent_path().filename().string() : dir.filename().string();
  in.write = [samples, keys, dir](std::uint64_t i, TarWriter& tar) {
    for (const fs::path& file : (*samples)[(*keys)[i]]) {
      std::ifstream f(file, std::ios::binary);
      std::stringstream bytes;
      bytes << f.rdbuf();
      if (!f) throw UserError(file.string() + ": cannot read");
      tar.add(fs::relative(file, dir).generic_string(), bytes.str());
    }
  };
  return in;
}

// The samples [a, b) of `in`, from "a:b".
Input restricted(Input in, const std::string& range) {
  const std::size_t colon = range.find(':');
  std::uint64_t a = 0, b = 0;
  try {
    if (colon == std::string::npos) throw std::invalid_argument("no ':'");
    std::size_t used = 0;
    a = std::stoull(range.substr(0, colon), &used);
    if (used != colon) throw std::invalid_argument("a");
    b = std::stoull(range.substr(colon + 1), &used);
    if (used != range.size() - colon - 1) throw std::invalid_argument("b");
  } catch (const std::exception&) {
    throw UserError("shard: --range: expected A:B (two integers), got '" + range + "'");
  }
  if (a >= b || b > in.samples)
    throw UserError("shard: --range " + range + ": the input has samples 0:" +
                    std::to_string(in.samples) + "; need A < B <= " + std::to_string(in.samples));
  in.samples = b - a;
  in.write = [inner = std::move(in.write), a](std::uint64_t i, TarWriter& tar) {
    inner(a + i, tar);
  };
  return in;
}

std::string guess_format(const fs::path& input) {
  if (fs::is_directory(input)) {
    for (const char* f : {"train-images-idx3-ubyte", "train-images-idx3-ubyte.gz",
                          "t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"})
      if (fs::exists(input / f)) return "fmnist";
    return "files";
  }
  if (input.extension() == ".csv") return "csv";
  throw UserError(input.string() + ": cannot tell its format; give --from fmnist|csv|files");
}

}  // namespace

int shard_command(const std::vector<std::string>& args) {
  std::string out, name, from, split = "train", range;
  std::vector<std::string> uploads;
  std::uint64_t shards = 8;
  po::options_description options(kUsage);
  options.add_options()("help,h", "show this help")(
      "out,o", po::value<std::string>(&out), "where the shards go: a directory or URL prefix")(
      "shards,n", po::value<std::uint64_t>(&shards)->default_value(8), "number of shards")(
      "name", po::value<std::string>(&name),
      "file name stem (default: the split, CSV or directory name)")(
      "from", po::value<std::string>(&from), "fmnist, csv or files")(
      "split", po::value<std::string>(&split)->default_value("train"), "fmnist: train or test")(
      "range", po::value<std::string>(&range), "A:B: only samples A to B-1 of the input")(
      "upload", po::value<std::vector<std::string>>(&uploads),
      "also put every object under this URL prefix");
  po::variables_map vm;
  const std::string input_arg = parse_command_line(args, options, "input", vm);
  if (vm.count("help")) {
    std::cout << options << '\n';
    return kExitOk;
  }
  if (input_arg.empty()) throw UserError("shard: missing INPUT; see --help");
  if (out.empty() && uploads.empty()) throw UserError("shard: give --out (and/or --upload)");
  const fs::path input = input_arg;
  if (!fs::exists(input))
    throw UserError("shard: " + input.string() + ": no such file or directory");
  if (from.empty()) from = guess_format(input);
  Input in;
  if (from == "fmnist") {
    in = fmnist_input(input, split);
  } else if (from == "csv") {
    in = csv_input(input);
  } else if (from == "files") {
    if (!fs::is_directory(input)) throw UserError("shard: --from files needs a directory");
    in = files_input(input);
  } else {
    throw UserError("shard: --from: expected fmnist, csv or files, got '" + from + "'");
  }
  if (!range.empty()) in = restricted(std::move(in), range);
  ShardWriteOptions write;
  write.name = name.empty() ? in.default_name : name;
  write.shards = shards;
  if (!out.empty()) write.destinations.push_back(out);
  write.destinations.insert(write.destinations.end(), uploads.begin(), uploads.end());
  Manifest manifest;
  try {
    manifest = write_shards(in.samples, in.write, write);
  } catch (const ShardingError& e) {
    throw UserError("shard: " + std::string(e.what()));
  }
  std::uint64_t bytes = 0;
  for (const ShardInfo& s : manifest.shards) bytes += s.size;
  for (const std::string& d : write.destinations)
    std::cout << "wrote " << manifest.shards.size() << " shards (" << manifest.samples()
              << " samples, " << bytes << " bytes) and "
              << join_url(d, write.name + ".manifest.json") << '\n';
  std::cout << "digest " << manifest.digest << '\n';
  return kExitOk;
}

}  // namespace xpscale::cli
