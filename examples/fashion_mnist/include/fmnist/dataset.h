#pragma once
// Fashion-MNIST in memory: 28x28 grey images with labels 0-9, split into
// train (the first 55,000 training images), validation (the last 5,000)
// and test (the 10,000 test images).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "fmnist/idx.h"

namespace fmnist {

inline constexpr int kImageSide = 28;
inline constexpr int kPixels = kImageSide * kImageSide;
inline constexpr int kClasses = 10;
inline constexpr std::size_t kDefaultValidation = 5000;

// Images and labels of one split. Pixels stay bytes (a quarter of the
// memory of floats, times every rank on a node); gather() turns a batch
// into normalised floats.
struct Split {
  std::vector<std::uint8_t> pixels;  // size() * kPixels, image i at i * kPixels
  std::vector<std::uint8_t> labels;  // size(), each < kClasses

  std::size_t size() const { return labels.size(); }
  // Writes images `indices` as the columns of a kPixels x indices.size()
  // column-major float matrix at `out` (normalised to zero mean and unit
  // variance with the data set's published statistics), and their labels
  // to `labels_out`.
  void gather(std::span<const std::uint32_t> indices, float* out, std::uint8_t* labels_out) const;
  // The same for the contiguous range [begin, begin + n).
  void gather_range(std::size_t begin, std::size_t n, float* out, std::uint8_t* labels_out) const;
};

// Writes one image's kPixels bytes as normalised floats (zero mean, unit
// variance with the data set's published statistics), as gather() does.
void normalise_image(const std::uint8_t* pixels, float* out);

struct Dataset {
  Split train, validation, test;
};

// The data directory: $XPSCALE_FMNIST_DIR if set, else
// /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist).
std::filesystem::path default_data_dir();

// Checks that `images` (N x 28 x 28) and `labels` (N) fit together and
// copies items [begin, end) into a Split. Throws IdxError naming the files.
Split make_split(const IdxArray& images, const std::filesystem::path& images_file,
                 const IdxArray& labels, const std::filesystem::path& labels_file,
                 std::size_t begin, std::size_t end);

// Loads the four files from `dir` (each either plain or with a .gz suffix:
// train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
// t10k-labels-idx1-ubyte) and holds out the last `validation` training
// images. Throws IdxError naming the missing or broken file.
Dataset load_dataset(const std::filesystem::path& dir, std::size_t validation = kDefaultValidation);

}  // namespace fmnist
