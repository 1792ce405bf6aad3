#include "fmnist/trial_loop.h"

#include <charconv>
#include <map>
#include <mutex>

#include "fmnist/host_reduce.h"

namespace fmnist {

namespace xc = xpscale::collectives;

namespace {
constexpr int kDefaultEpochs = 5;
}  // namespace

TrialSettings read_settings(const xpscale::Trial& trial) {
  TrialSettings s;
  s.options.lr = trial.param<double>("lr");
  s.options.hidden = trial.param<int>("hidden");
  s.options.batch_size = trial.param<int>("batch_size");
  if (trial.has_param("momentum")) s.options.momentum = trial.param<double>("momentum");
  if (trial.has_param("seed")) s.options.seed = trial.param<std::uint64_t>("seed");
  s.epochs = trial.has_param("epochs") ? trial.param<int>("epochs") : kDefaultEpochs;
  s.data_dir = trial.has_param("data_dir")
                   ? std::filesystem::path(trial.param<std::string>("data_dir"))
                   : default_data_dir();
  return s;
}

std::shared_ptr<const Dataset> shared_dataset(const std::filesystem::path& dir) {
  static std::mutex mutex;
  static std::map<std::filesystem::path, std::shared_ptr<const Dataset>> cache;
  const std::lock_guard lock(mutex);
  auto& slot = cache[dir];
  if (!slot) slot = std::make_shared<const Dataset>(load_dataset(dir));
  return slot;
}

void on_ranks_agreed(xc::Communicator& comm, bool here, const char* what,
                     const std::function<void()>& fn) {
  std::string error;
  std::int32_t ok = 1;
  if (here) {
    try {
      fn();
    } catch (const std::exception& e) {
      ok = 0;
      error = e.what();
    }
  }
  allreduce_host(comm, &ok, 1, xc::DataType::kI32, xc::ReduceOp::kMin);
  if (!ok) {
    if (!error.empty()) throw xpscale::Error(error);
    throw xpscale::Error(std::string(what) + " failed on another rank of the group");
  }
}

void fill_from(xpscale::ShardedLoader& loader, float* x, std::uint8_t* y, int n) {
  for (int j = 0; j < n; ++j) {
    auto sample = loader.next();
    if (!sample) throw xpscale::Error("the loader ran out of samples mid-epoch");
    const std::string_view pixels = sample->field("u8");
    if (pixels.size() != kPixels)
      throw xpscale::Error("sample '" + sample->key + "': u8 holds " +
                           std::to_string(pixels.size()) + " bytes, expected 784");
    normalise_image(reinterpret_cast<const std::uint8_t*>(pixels.data()),
                    x + static_cast<std::size_t>(j) * kPixels);
    const std::string_view cls = sample->field("cls");
    int label = -1;
    const auto [end, ec] = std::from_chars(cls.data(), cls.data() + cls.size(), label);
    if (ec != std::errc() || end != cls.data() + cls.size() || label < 0 || label >= kClasses)
      throw xpscale::Error("sample '" + sample->key + "': cls is \"" + std::string(cls) +
                           "\", expected a class number 0-9");
    y[j] = static_cast<std::uint8_t>(label);
  }
}

}  // namespace fmnist
