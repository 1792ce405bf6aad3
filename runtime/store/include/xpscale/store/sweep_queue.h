#pragma once
// The queue of sweeps in a PostgreSQL store (docs/store.md, "A queue of
// sweeps"): `xpscale enqueue` adds entries, `xpscale agent` processes take
// them and run each as a job of its shared sweep, `xpscale queue` lists,
// pauses, resumes and cancels.
//
// The protocol, all of it on the server's clock:
//   - An entry is a sweep config (its path, text and canonical hash) on a
//     named queue with a priority. At most one entry per sweep name is
//     active (queued or running); finished ones stay as history.
//   - claim(): an agent takes the queued entry of highest priority, then
//     oldest, among its queues that are not paused and whose resources it
//     has (ranks_per_trial <= its ranks; ranks x gpus_per_rank <= its GPUs),
//     with FOR UPDATE SKIP LOCKED: no entry goes to two agents.
//   - The agent holds the entry by a lease (heartbeat() every few seconds).
//     An entry whose agent stopped renewing for lease_s is claimable again:
//     the next agent resumes its sweep, which the shared store makes safe
//     (the dead job's trials are reaped and run again).
//   - finish() ends the entry (done, failed, cancelled) or puts it back
//     (queued: the agent was stopped, the job preempted; cancelled instead
//     when a cancel was asked for), only while the agent still holds it.
//   - cancel() ends a queued entry at once and asks a running one's agent,
//     through its next heartbeat, to stop the job.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace xpscale {

namespace pg {
class Connection;
}

struct QueueEntry {
  std::int64_t id = 0;
  std::string queue, sweep, config_path, config_text, config_hash, out_dir;
  std::string cwd;  // where it was enqueued: the job runs there
  std::int64_t ranks_per_trial = 1, gpus_per_rank = 0;
  int priority = 0;
  std::string status;  // queued, running, done, failed, cancelled
  bool cancel_requested = false;
  double enqueued_at = 0;
  std::string enqueued_by;
  std::optional<double> started_at, finished_at, heartbeat_at;
  std::string agent;
  int runs = 0;  // how many times an agent took it
  std::optional<int> exit_code;
  std::string message;
  // From the sweep in the same store (0 before its first job).
  std::int64_t trials = 0, completed = 0, failed = 0, running = 0;
  bool paused = false;  // its queue is paused
};

struct NewQueueEntry {
  std::string queue = "default", sweep, config_path, config_text, config_hash, out_dir, cwd;
  std::int64_t ranks_per_trial = 1, gpus_per_rank = 0;
  int priority = 0;
  std::string enqueued_by;
};

// What an agent offers.
struct AgentOffer {
  std::vector<std::string> queues;
  std::int64_t ranks = 1, gpus = 0;
  std::string agent;  // "user@host pid N"
  double lease_s = 60;
};

class SweepQueue {
 public:
  // Connects to the store at `url`, creating or migrating its schema unless
  // read_only. Throws StoreError (kUser for an unreachable server, a wrong
  // password, a database that is not a store).
  explicit SweepQueue(const std::string& url, bool read_only = false);
  ~SweepQueue();
  SweepQueue(const SweepQueue&) = delete;
  SweepQueue& operator=(const SweepQueue&) = delete;

  std::string location() const;

  // Adds `e`; returns it as stored, with its id. Throws StoreError (kUser)
  // when the sweep already has an active entry, naming it (also to all but
  // one of several enqueues of the sweep at once).
  QueueEntry enqueue(const NewQueueEntry& e);
  // How many queued entries of its queue come before entry `id`.
  std::int64_t position(std::int64_t id);

  std::optional<QueueEntry> claim(const AgentOffer& offer);
  enum class Beat { kHeld, kCancel, kLost };
  Beat heartbeat(std::int64_t id, const std::string& agent);
  // status: done, failed, cancelled, or queued (back to the queue; an
  // entry whose cancel was asked for is cancelled instead). False when the
  // agent no longer held the entry (nothing changed).
  bool finish(std::int64_t id, const std::string& agent, const std::string& status,
              std::optional<int> exit_code, const std::string& message);

  // The entries of `queues` (all queues when empty): active ones, then the
  // last `finished` finished ones.
  std::vector<QueueEntry> list(const std::vector<std::string>& queues, int finished = 20);
  // Entry `key` (an id, or a sweep name: its active entry, else its latest).
  std::optional<QueueEntry> find(const std::string& key);
  void set_paused(const std::string& queue, bool paused, const std::string& by);
  // The queues that have entries or were paused: (name, paused).
  std::vector<std::pair<std::string, bool>> queues();
  // Cancels the active entry `key` (id or sweep name); returns it after.
  // Throws StoreError (kUser) when there is no such active entry.
  QueueEntry cancel(const std::string& key, const std::string& by);

 private:
  std::unique_ptr<pg::Connection> db_;
};

}  // namespace xpscale
