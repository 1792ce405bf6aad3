#pragma once
// The sharded loader's view of a trial's group (sharding/loader.h),
// backed by the group's Communicator: the runtime supplies it because
// sharding knows neither MPI nor the collectives.
#include "xpscale/collectives/communicator.h"
#include "xpscale/sharding/loader.h"

namespace xpscale {

// rank, size and an allgather of strings over comm (collective: two
// allgathers, lengths then bytes). comm must outlive the view.
GroupView make_group_view(collectives::Communicator& comm);

}  // namespace xpscale
