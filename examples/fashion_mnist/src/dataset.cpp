#include "fmnist/dataset.h"

#include <cstdlib>
#include <string>
#include <system_error>

namespace fmnist {
namespace {

// Mean and standard deviation of Fashion-MNIST's training pixels in [0, 1].
constexpr float kMean = 0.2860f;
constexpr float kStd = 0.3530f;

std::filesystem::path find_file(const std::filesystem::path& dir, const std::string& base) {
  std::error_code ec;
  for (const auto& candidate : {dir / base, dir / (base + ".gz")}) {
    if (std::filesystem::is_regular_file(candidate, ec)) return candidate;
  }
  throw IdxError((dir / base).string() + ": no such file (nor " + base +
                 ".gz); install Debian's dataset-fashion-mnist or point XPSCALE_FMNIST_DIR "
                 "(or the data_dir parameter) at a directory with the Fashion-MNIST IDX files");
}

}  // namespace

void normalise_image(const std::uint8_t* pixels, float* out) {
  constexpr float kScale = 1.0f / (255.0f * kStd);
  constexpr float kShift = kMean / kStd;
  for (int p = 0; p < kPixels; ++p) out[p] = static_cast<float>(pixels[p]) * kScale - kShift;
}

void Split::gather(std::span<const std::uint32_t> indices, float* out,
                   std::uint8_t* labels_out) const {
  for (std::size_t j = 0; j < indices.size(); ++j) {
    normalise_image(pixels.data() + std::size_t{indices[j]} * kPixels, out + j * kPixels);
    labels_out[j] = labels[indices[j]];
  }
}

void Split::gather_range(std::size_t begin, std::size_t n, float* out,
                         std::uint8_t* labels_out) const {
  std::vector<std::uint32_t> indices(n);
  for (std::size_t j = 0; j < n; ++j) indices[j] = static_cast<std::uint32_t>(begin + j);
  gather(indices, out, labels_out);
}

std::filesystem::path default_data_dir() {
  if (const char* env = std::getenv("XPSCALE_FMNIST_DIR"); env && *env) return env;
  return "/usr/share/datasets/fashion-mnist";
}

Split make_split(const IdxArray& images, const std::filesystem::path& images_file,
                 const IdxArray& labels, const std::filesystem::path& labels_file,
                 std::size_t begin, std::size_t end) {
  if (images.dims.size() != 3 || images.dims[1] != kImageSide || images.dims[2] != kImageSide) {
    std::string got;
    for (const auto d : images.dims) {
      if (!got.empty()) got += 'x';
      got += std::to_string(d);
    }
    throw IdxError(images_file.string() + ": dims " + got + ", expected N x 28 x 28 images");
  }
  if (labels.dims.size() != 1)
    throw IdxError(labels_file.string() + ": " + std::to_string(labels.dims.size()) +
                   " dimensions, expected 1 (a vector of labels)");
  if (images.count() != labels.count())
    throw IdxError(images_file.string() + " has " + std::to_string(images.count()) +
                   " images but " + labels_file.string() + " has " +
                   std::to_string(labels.count()) + " labels");
  if (begin > end || end > images.count())
    throw IdxError(images_file.string() + ": asked for items " + std::to_string(begin) + " to " +
                   std::to_string(end) + " of " + std::to_string(images.count()));
  for (std::size_t i = begin; i < end; ++i) {
    if (labels.data[i] >= kClasses)
      throw IdxError(labels_file.string() + ": label " + std::to_string(labels.data[i]) +
                     " at index " + std::to_string(i) + " is not a class 0-9");
  }
  Split s;
  s.pixels.assign(images.data.begin() + static_cast<std::ptrdiff_t>(begin * kPixels),
                  images.data.begin() + static_cast<std::ptrdiff_t>(end * kPixels));
  s.labels.assign(labels.data.begin() + static_cast<std::ptrdiff_t>(begin),
                  labels.data.begin() + static_cast<std::ptrdiff_t>(end));
  return s;
}

Dataset load_dataset(const std::filesystem::path& dir, std::size_t validation) {
  const auto train_images_file = find_file(dir, "train-images-idx3-ubyte");
  const auto train_labels_file = find_file(dir, "train-labels-idx1-ubyte");
  const auto test_images_file = find_file(dir, "t10k-images-idx3-ubyte");
  const auto test_labels_file = find_file(dir, "t10k-labels-idx1-ubyte");

  Dataset d;
  {
    const IdxArray images = read_idx(train_images_file);
    const IdxArray labels = read_idx(train_labels_file);
    if (validation >= images.count())
      throw IdxError(train_images_file.string() + ": " + std::to_string(images.count()) +
                     " images, too few to hold out " + std::to_string(validation) +
                     " for validation");
    const std::size_t n = images.count() - validation;
    d.train = make_split(images, train_images_file, labels, train_labels_file, 0, n);
    d.validation =
        make_split(images, train_images_file, labels, train_labels_file, n, images.count());
  }
  const IdxArray images = read_idx(test_images_file);
  const IdxArray labels = read_idx(test_labels_file);
  d.test = make_split(images, test_images_file, labels, test_labels_file, 0, images.count());
  return d;
}

}  // namespace fmnist
