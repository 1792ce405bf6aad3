// fashion_mnist: the example in-process trainer. Each trial trains the MLP
// of fmnist/mlp.h data-parallel over its group and reports loss,
// validation and test accuracy per epoch.
//
//   mpirun -n 4 build/examples/fashion_mnist/fashion_mnist --sweep examples/sweeps/fmnist_mlp.yaml
//
// Parameters: lr, hidden, batch_size (global, a multiple of the group
// size); optional epochs (5), momentum (0.9), seed (0), data_dir
// (default $XPSCALE_FMNIST_DIR, else /usr/share/datasets/fashion-mnist).
//
// With a data.train section in the sweep config (shards written by
// `xpscale shard /usr/share/datasets/fashion-mnist --split train --range
// 0:55000 ...`), the
// training images stream through the trial's sharded loader (its state is
// saved with each checkpoint) and the IDX files serve only validation and
// test; see examples/sweeps/fmnist_sharded.yaml.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>

#include "fmnist/checkpoint.h"
#include "fmnist/data_parallel.h"
#include "fmnist/dataset.h"
#include "xpscale/runtime/run.h"

namespace {

namespace xc = xpscale::collectives;

constexpr int kDefaultEpochs = 5;

// A rank runs many trials; the data set is read once per process.
std::shared_ptr<const fmnist::Dataset> dataset(const std::filesystem::path& dir) {
  static std::mutex mutex;
  static std::map<std::filesystem::path, std::shared_ptr<const fmnist::Dataset>> cache;
  const std::lock_guard lock(mutex);
  auto& slot = cache[dir];
  if (!slot) slot = std::make_shared<const fmnist::Dataset>(fmnist::load_dataset(dir));
  return slot;
}

// Runs `fn` on the ranks where `here` is true and makes its failure the
// whole group's: every rank throws, instead of the others waiting for the
// failed rank in the next collective until it times out.
template <class Fn>
void on_ranks_agreed(xc::Communicator& comm, bool here, const char* what, Fn&& fn) {
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
  comm.allreduce(&ok, &ok, 1, xc::DataType::kI32, xc::ReduceOp::kMin);
  if (!ok) {
    if (!error.empty()) throw xpscale::Error(error);
    throw xpscale::Error(std::string(what) + " failed on another rank of the group");
  }
}

// Fills a batch from the loader's next samples (fields "u8": 784 pixels,
// "cls": the label as text).
void fill_from(xpscale::ShardedLoader& loader, float* x, std::uint8_t* y, int n) {
  for (int j = 0; j < n; ++j) {
    auto sample = loader.next();
    if (!sample) throw xpscale::Error("the loader ran out of samples mid-epoch");
    const std::string_view pixels = sample->field("u8");
    if (pixels.size() != fmnist::kPixels)
      throw xpscale::Error("sample '" + sample->key + "': u8 holds " +
                           std::to_string(pixels.size()) + " bytes, expected 784");
    fmnist::normalise_image(reinterpret_cast<const std::uint8_t*>(pixels.data()),
                            x + std::size_t{static_cast<std::size_t>(j)} * fmnist::kPixels);
    const int label = std::stoi(std::string(sample->field("cls")));
    if (label < 0 || label >= fmnist::kClasses)
      throw xpscale::Error("sample '" + sample->key + "': label " + std::to_string(label));
    y[j] = static_cast<std::uint8_t>(label);
  }
}

void train(xpscale::Trial& trial) {
  fmnist::TrainOptions options;
  options.lr = trial.param<double>("lr");
  options.hidden = trial.param<int>("hidden");
  options.batch_size = trial.param<int>("batch_size");
  if (trial.has_param("momentum")) options.momentum = trial.param<double>("momentum");
  if (trial.has_param("seed")) options.seed = trial.param<std::uint64_t>("seed");
  const int epochs = trial.has_param("epochs") ? trial.param<int>("epochs") : kDefaultEpochs;
  const std::filesystem::path data_dir =
      trial.has_param("data_dir") ? std::filesystem::path(trial.param<std::string>("data_dir"))
                                  : fmnist::default_data_dir();
  auto& comm = trial.comm();

  std::shared_ptr<const fmnist::Dataset> data;
  on_ranks_agreed(comm, true, "loading the data set", [&] { data = dataset(data_dir); });
  xpscale::ShardedLoader* loader =
      trial.has_data("train")
          ? &trial.loader("train", static_cast<std::uint64_t>(options.batch_size))
          : nullptr;
  // Streamed: the group's images per epoch are the loader's, repeats included.
  fmnist::DataParallelTrainer trainer =
      loader
          ? fmnist::DataParallelTrainer(
                loader->samples_per_epoch() * static_cast<std::size_t>(comm.size()), options, comm)
          : fmnist::DataParallelTrainer(data->train, options, comm);

  const std::filesystem::path& dir = trial.checkpoint_dir();
  const std::int64_t resumed = trial.resume_step();
  if (resumed >= 0) {
    // The leader reads the checkpoint and hands it to the group, so that it
    // need not be on a file system every node sees.
    on_ranks_agreed(comm, trial.is_leader(), "loading the checkpoint", [&] {
      trainer.restore(fmnist::load_checkpoint(fmnist::checkpoint_file(dir, resumed)));
    });
    trainer.broadcast_state(0);
    trial.log("resumed from the checkpoint of epoch " + std::to_string(resumed));
  }

  const std::int64_t first = std::max<std::int64_t>(resumed, 0) + 1;
  if (first > epochs && trial.is_leader())
    trial.log("all " + std::to_string(epochs) + " epochs were done before the restart");
  for (std::int64_t epoch = first; epoch <= epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    double loss = 0;
    if (loader) {
      // Full local batches; the rest of the epoch is drained (every rank
      // has the same count, so every rank runs the same steps).
      const std::size_t steps =
          loader->samples_per_epoch() / static_cast<std::size_t>(trainer.local_batch());
      loss = trainer.train_epoch_streamed(
          steps, [&](float* x, std::uint8_t* y, int n) { fill_from(*loader, x, y, n); });
      while (loader->next()) {
      }
    } else {
      loss = trainer.train_epoch(epoch);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const fmnist::Evaluation val = trainer.evaluate(data->validation);
    const fmnist::Evaluation test = trainer.evaluate(data->test);

    on_ranks_agreed(comm, trial.is_leader(), "saving the checkpoint", [&] {
      fmnist::save_checkpoint(fmnist::checkpoint_file(dir, epoch), trainer.snapshot(epoch));
      trial.checkpoint_saved(epoch);
      fmnist::remove_checkpoints_before(dir, epoch);
    });

    if (trial.is_leader()) {
      std::ostringstream line;
      line.precision(4);
      line << "epoch " << epoch << "/" << epochs << ": loss " << loss << ", val_accuracy "
           << val.accuracy << ", test_accuracy " << test.accuracy << " (" << seconds << " s)";
      trial.log(line.str());
    }
    nlohmann::json metrics = {{"loss", loss},
                              {"val_loss", val.loss},
                              {"val_accuracy", val.accuracy},
                              {"test_accuracy", test.accuracy},
                              {"epoch_s", seconds}};
    if (loader) metrics["data_stall_fraction"] = loader->stats().stall_fraction();
    if (trial.report(epoch, metrics) == xpscale::Decision::kStop) break;
  }
}

}  // namespace

int main(int argc, char** argv) { return xpscale::run(argc, argv, train); }
