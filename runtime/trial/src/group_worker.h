#pragma once
// The loop every rank of a group runs: get a trial, run the train function,
// report its outcome, repeat (protocol.h).
#include <mpi.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "xpscale/collectives/communicator.h"
#include "xpscale/trial/run.h"
#include "xpscale/trial/trial.h"

namespace xpscale::detail {

struct GroupContext {
  MPI_Comm ctrl = MPI_COMM_NULL;  // world dup; the coordinator is rank 0
  MPI_Comm gctl = MPI_COMM_NULL;  // group dup for control messages
  collectives::Communicator* comm = nullptr;
  int group = 0, group_rank = 0, group_size = 1;
  int world_rank = 0, local_rank = 0, local_size = 1;
  std::string ranks, hosts_text;  // "0,1" / "a,a" for the store
  std::vector<std::string> hosts;
  std::filesystem::path out_dir;
  std::optional<double> time_limit_s;
  std::map<std::string, DatasetSpec> data;  // the config's data: splits
};

class GroupWorker final : public TrialChannel {
 public:
  explicit GroupWorker(GroupContext ctx) : ctx_(std::move(ctx)) {}
  void run(const TrainFn& train);

  Decision report(std::int64_t step, const nlohmann::json& metrics, std::string& reason) override;
  Decision report_as_leader(std::int64_t step, const nlohmann::json& metrics,
                            std::string& reason) override;

 private:
  struct Outcome {
    bool ok = true;
    std::string reason, stderr_tail;
    bool preempted = false;  // ended because of preemption, not failed
  };

  static Outcome outcome_of(const nlohmann::json& body);
  void leader_loop(const TrainFn& train);
  void member_loop(const TrainFn& train);
  Outcome run_trial(const TrainFn& train, const nlohmann::json& msg);
  // Leader: the members' outcomes for the current trial, answering late
  // reports with Stop.
  void collect_outcomes();
  Decision ask_coordinator(std::int64_t step, const nlohmann::json& metrics, std::string& reason);
  nlohmann::json result_of(const Outcome& own) const;
  bool is_current(const nlohmann::json& body) const {
    return body.value("seq", std::int64_t{-1}) == seq_;
  }

  GroupContext ctx_;
  std::int64_t seq_ = 0;
  // Current trial.
  std::uint64_t trial_ = 0;
  int attempt_ = 0;
  double start_ = 0;
  std::string last_stop_reason_;
  std::map<int, Outcome> member_outcomes_;  // leader: members that have left the trial
};

}  // namespace xpscale::detail
