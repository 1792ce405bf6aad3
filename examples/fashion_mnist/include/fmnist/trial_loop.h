#pragma once
// The body of a Fashion-MNIST trial, shared by the CPU trainer
// (DataParallelTrainer) and the CUDA one (CudaDataParallelTrainer): read
// the parameters, load the data set once per process, resume from the
// trial's checkpoint, then per epoch train, evaluate, checkpoint and report
// loss, val_loss, val_accuracy, test_accuracy and epoch_s.
//
// Parameters: lr, hidden, batch_size (global, a multiple of the group
// size); optional epochs (5), momentum (0.9), seed (0), data_dir (default
// $XPSCALE_FMNIST_DIR, else /usr/share/datasets/fashion-mnist).
//
// With a data.train section in the sweep config (shards written by
// `xpscale shard /usr/share/datasets/fashion-mnist --split train --range
// 0:55000 ...`), the training images stream through the trial's sharded
// loader (its state is saved with each checkpoint) and the IDX files serve
// only validation and test; see examples/sweeps/fmnist_sharded.yaml. Only
// trainers with train_epoch_streamed (the CPU one) can stream.
//
// A Trainer has the interface of DataParallelTrainer: train_epoch(epoch),
// evaluate(split), snapshot(epoch), restore(checkpoint) and
// broadcast_state(root). The collectives of the loop itself (the "did every
// rank succeed" agreements) go through allreduce_host, so they work on
// either memory kind of the trial's communicator.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <sstream>
#include <string>

#include "fmnist/checkpoint.h"
#include "fmnist/data_parallel.h"
#include "fmnist/dataset.h"
#include "xpscale/trial/trial.h"

namespace fmnist {

struct TrialSettings {
  TrainOptions options;
  int epochs = 5;
  std::filesystem::path data_dir;
};

// The trial's parameters as above. Throws TrialError for a missing or
// mistyped parameter.
TrialSettings read_settings(const xpscale::Trial& trial);

// The data set in `dir`, read once per process (a rank runs many trials)
// and shared by every trial after.
std::shared_ptr<const Dataset> shared_dataset(const std::filesystem::path& dir);

// Runs `fn` on the ranks where `here` is true and makes its failure the
// whole group's: every rank throws, instead of the others waiting for the
// failed rank in the next collective until it times out. Collective.
void on_ranks_agreed(xpscale::collectives::Communicator& comm, bool here, const char* what,
                     const std::function<void()>& fn);

// Fills a batch from the loader's next samples (fields "u8": 784 pixels,
// "cls": the label as text), normalised as Split::gather does.
void fill_from(xpscale::ShardedLoader& loader, float* x, std::uint8_t* y, int n);

// A trainer that can train on batches the caller streams (DataParallelTrainer).
template <class Trainer>
concept StreamingTrainer = requires(Trainer& t, std::size_t train_size, const TrainOptions& o,
                                    xpscale::collectives::Communicator& c,
                                    const DataParallelTrainer::BatchFill& fill) {
  Trainer(train_size, o, c);
  t.train_epoch_streamed(train_size, fill);
  t.local_batch();
};

// make_trainer(train split, options, comm) builds the trainer (collective)
// when the training images come from the IDX files; a streaming trainer is
// built from the loader's epoch size instead.
template <class Trainer, class MakeTrainer>
void train_trial(xpscale::Trial& trial, MakeTrainer&& make_trainer) {
  const TrialSettings settings = read_settings(trial);
  auto& comm = trial.comm();

  std::shared_ptr<const Dataset> data;
  on_ranks_agreed(comm, true, "loading the data set",
                  [&] { data = shared_dataset(settings.data_dir); });
  xpscale::ShardedLoader* loader = nullptr;
  std::unique_ptr<Trainer> trainer;
  if (trial.has_data("train")) {
    if constexpr (StreamingTrainer<Trainer>) {
      loader = &trial.loader("train", static_cast<std::uint64_t>(settings.options.batch_size));
      // The group's images per epoch are the loader's, flagged repeats included.
      trainer = std::make_unique<Trainer>(
          loader->samples_per_epoch() * static_cast<std::size_t>(comm.size()), settings.options,
          comm);
    } else {
      throw xpscale::TrialError(
          "this trainer reads the IDX files only; the config's data.train section is for the "
          "CPU trainer fashion_mnist");
    }
  } else {
    trainer = make_trainer(data->train, settings.options, comm);
  }

  const std::filesystem::path& dir = trial.checkpoint_dir();
  const std::int64_t resumed = trial.resume_step();
  if (resumed >= 0) {
    // The leader reads the checkpoint and hands it to the group, so that it
    // need not be on a file system every node sees.
    on_ranks_agreed(comm, trial.is_leader(), "loading the checkpoint",
                    [&] { trainer->restore(load_checkpoint(checkpoint_file(dir, resumed))); });
    trainer->broadcast_state(0);
    trial.log("resumed from the checkpoint of epoch " + std::to_string(resumed));
  }

  const int epochs = settings.epochs;
  const std::int64_t first = std::max<std::int64_t>(resumed, 0) + 1;
  if (first > epochs && trial.is_leader())
    trial.log("all " + std::to_string(epochs) + " epochs were done before the restart");
  for (std::int64_t epoch = first; epoch <= epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    double loss = 0;
    if constexpr (StreamingTrainer<Trainer>) {
      if (loader) {
        // Full local batches; the rest of the epoch is drained (every rank
        // has the same count, so every rank runs the same steps).
        const std::size_t steps =
            loader->samples_per_epoch() / static_cast<std::size_t>(trainer->local_batch());
        loss = trainer->train_epoch_streamed(
            steps, [&](float* x, std::uint8_t* y, int n) { fill_from(*loader, x, y, n); });
        while (loader->next()) {
        }
      }
    }
    if (!loader) loss = trainer->train_epoch(epoch);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const Evaluation val = trainer->evaluate(data->validation);
    const Evaluation test = trainer->evaluate(data->test);

    // Only the leader snapshots (a device-to-host copy for the CUDA
    // trainer) and writes; every rank learns whether that worked.
    on_ranks_agreed(comm, trial.is_leader(), "saving the checkpoint", [&] {
      save_checkpoint(checkpoint_file(dir, epoch), trainer->snapshot(epoch));
      trial.checkpoint_saved(epoch);
      remove_checkpoints_before(dir, epoch);
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

}  // namespace fmnist
