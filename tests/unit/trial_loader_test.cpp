// Trial::loader: a split of the config's data section, its state saved by
// checkpoint_saved() and picked up by the next attempt.
#include <mpi.h>

#include <gtest/gtest.h>

#include "sharding_test_util.h"
#include "xpscale/runtime/trial.h"

namespace xpscale {
namespace {

class MpiSelf : public ::testing::Environment {
 public:
  void SetUp() override {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    collectives::Options o;
    o.backend = "mpi";
    comm = collectives::make_communicator(MPI_COMM_SELF, o);
  }
  void TearDown() override {
    comm.reset();
    MPI_Finalize();
  }
  static inline std::unique_ptr<collectives::Communicator> comm;
};
const auto* const kMpiSelf = ::testing::AddGlobalTestEnvironment(new MpiSelf);

class NoChannel : public detail::TrialChannel {
 public:
  Decision report(std::int64_t, const nlohmann::json&, std::string&) override {
    return Decision::kContinue;
  }
  Decision report_as_leader(std::int64_t, const nlohmann::json&, std::string&) override {
    return Decision::kContinue;
  }
};

std::vector<std::uint64_t> take(ShardedLoader& loader, std::size_t n) {
  std::vector<std::uint64_t> out;
  for (std::size_t i = 0; i < n; ++i) {
    auto s = loader.next();
    if (!s) break;
    out.push_back(test::sample_number(*s));
  }
  return out;
}

TEST(TrialLoader, ANewAttemptContinuesFromTheCheckpointsLoaderState) {
  test::TempDir dir;
  Trial::Info info;
  info.id = 3;
  info.checkpoint_dir = dir.path() / "checkpoint";
  DatasetSpec spec;
  spec.manifest = test::make_dataset(dir.path(), 103, 5);
  spec.shuffle_buffer_bytes = 8192;
  spec.seed = 4;
  info.data["train"] = spec;
  NoChannel channel;

  std::vector<std::uint64_t> expected;
  {
    Trial first(info, *MpiSelf::comm, channel);
    ShardedLoader& loader = first.loader("train");
    EXPECT_EQ(&loader, &first.loader("train"));  // one per split
    take(loader, 40);
    first.checkpoint_saved(3);
    expected = take(loader, 30);  // what an uninterrupted run reads next
    take(loader, 10);
    first.checkpoint_saved(4);  // a later checkpoint must not leak into step 3
  }
  write_checkpoint_step(info.checkpoint_dir, 3);  // as if step 4's marker never landed
  Trial second(info, *MpiSelf::comm, channel);
  ASSERT_EQ(second.resume_step(), 3);
  EXPECT_EQ(take(second.loader("train"), 30), expected);
  EXPECT_THROW(second.loader("val"), TrialError);
}

}  // namespace
}  // namespace xpscale
