#pragma once
// The control protocol of a sweep: who sends what to whom, in which order.
//
// Communicators (all made collectively by run_sweep on every rank):
//   ctrl   MPI_Comm_dup(MPI_COMM_WORLD). Group leaders <-> the coordinator,
//          a background thread of world rank 0.
//   group  MPI_Comm_split of the world into groups of ranks_per_trial
//          ranks, node-first (groups.h). Rank 0 of a group is its leader.
//          The runtime talks on a dup of it ("gctl"); the trial's
//          Communicator gets its own dup, so user collectives and control
//          messages never match each other.
//
// Every message is one JSON object sent as MPI_CHAR, received with a
// matched probe (MPI_Improbe/MPI_Mrecv), so two threads of rank 0 can
// receive on ctrl at once: the coordinator takes only kTagRequest, rank 0's
// own leader only kTagReply.
//
// Leader -> coordinator (ctrl, kTagRequest), each answered on kTagReply:
//   {"k":"next","g":G,"ranks":"0,1","hosts":"a,a","result":R|null}
//       R = the group's previous trial: {"t","a","status","reason",
//       "stderr_tail","start","end"}. The coordinator commits R to the store
//       before it answers, so a finished trial is durable before its group
//       gets new work. Answer: {"k":"trial","t":ID,"a":ATTEMPT,"p":PARAMS}
//       or {"k":"done"}. When nothing is queued but trials still run (one
//       may fail and be retried), the request is parked and answered later;
//       "done" is sent once the sweep is over or stopped.
//   {"k":"report","g":G,"t":ID,"a":ATTEMPT,"step":S,"time":T,"m":METRICS}
//       Answer: {"k":"decision","stop":bool,"reason":"..."}.
// A group has at most one request outstanding, so replies need no ids.
//
// Every rank but 0 -> coordinator (ctrl, kTagHeartbeat), never answered:
//   {"k":"hb"} every heartbeat interval, from a thread of its own, for as
//   long as the rank runs its group loop. A rank silent for longer than the
//   heartbeat timeout (stopped, stuck in the kernel, a wedged MPI progress
//   engine) is lost: the coordinator records its group's attempt "lost",
//   the other running attempts "interrupted", and aborts the job with
//   kExitRankLost, so that a requeue or rerun resumes the sweep. A running
//   external trial past resources.time_limit + kill_grace + a margin is
//   lost the same way (its group stopped answering). Idle ranks and the
//   ranks of a group told "done" are not watched (they stop sending).
//
// Leader <-> members of its group (gctl). Every message carries "seq", the
// group's trial counter; a receiver drops messages of an older seq (a
// decision sent to a rank that had already left the trial).
//   kTagTrial     leader -> member: the coordinator's answer to "next",
//                 with "seq" added; {"k":"done"} ends the member's loop.
//   kTagReport    member -> leader: {"seq","step"} the member is in report().
//   kTagDecision  leader -> member: {"seq","stop","reason"}.
//   kTagOutcome   member -> leader: {"seq","ok","reason"} the member's train
//                 function returned (ok) or threw.
// report() on the leader waits for each member's kTagReport (or its
// kTagOutcome: a member that has already left makes the decision Stop),
// asks the coordinator, and sends every waiting member the decision. After
// its own train function returns, the leader collects every member's
// kTagOutcome and answers any late kTagReport with Stop, so no rank ever
// waits for a partner that has left. Only a rank stuck inside a collective
// of the trial's Communicator waits — for that collective's timeout.
//
// Who owns what:
//   coordinator (coordinator.h, rank 0's thread)  the store: it is its only
//       writer, and commits a result before it answers the "next" that
//       carries it; the queue of trials; the searcher's and scheduler's
//       state (sweep_algorithms.h), saved in the same transactions.
//   group leader (trial/src/group_worker.h)  its group's conversation with
//       the coordinator: members never talk to the coordinator.
//   every rank of a group  its own trial's Communicator (made from the
//       group, never used for control) and its loaders.
//   the trial  its checkpoint directory (checkpoint_dir.h), the same on
//       every attempt; only PBT's exploit replaces it, between attempts.
//   any rank  a preemption request (preemption.h): a leader forwards it as
//       "pre": true on its next message; the coordinator then hands out no
//       trial and answers every report with Stop.
#include <mpi.h>

#include <chrono>
#include <optional>

#include <nlohmann/json.hpp>

namespace xpscale::detail {

constexpr int kTagRequest = 101;
constexpr int kTagReply = 102;
constexpr int kTagHeartbeat = 103;
constexpr int kTagTrial = 111;
constexpr int kTagReport = 112;
constexpr int kTagDecision = 113;
constexpr int kTagOutcome = 114;

struct Message {
  int source = -1;
  int tag = -1;
  nlohmann::json body;
};

// Sends one JSON object (standard-mode send; every message has a receiver
// that is, or will be, waiting for it).
void send_json(MPI_Comm comm, int dest, int tag, const nlohmann::json& body);
// The next message from (source, tag), either may be MPI_ANY_*; nullopt if
// none is there now.
std::optional<Message> try_recv_json(MPI_Comm comm, int source, int tag);
// Waits for the next message from (source, tag). Polls: spins briefly, then
// sleeps in growing steps up to ~0.5 ms, so a waiting thread leaves its core
// to the trial (Open MPI's blocking receive spins at 100%).
Message recv_json(MPI_Comm comm, int source, int tag);

// Backoff for polling loops: call idle() after each empty poll, reset()
// after each hit.
class Backoff {
 public:
  // Sleeps grow to at most max_sleep. The coordinator uses a short cap:
  // every microsecond it sleeps is a microsecond a finished group waits.
  // The first `spin_for` of idleness only polls, without yielding.
  explicit Backoff(std::chrono::microseconds max_sleep = std::chrono::microseconds(500),
                   std::chrono::microseconds spin_for = std::chrono::microseconds(50))
      : max_sleep_(max_sleep), spin_for_(spin_for) {}
  void reset() { idle_since_.reset(); }
  void idle();

 private:
  std::chrono::microseconds max_sleep_;
  std::chrono::microseconds spin_for_;
  std::optional<std::chrono::steady_clock::time_point> idle_since_;
};

// Seconds since the Unix epoch, for the store.
double unix_now();

}  // namespace xpscale::detail
