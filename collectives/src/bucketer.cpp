#include "xpscale/collectives/bucketer.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "usage_error.h"

namespace xpscale::collectives {

namespace {
void check(bool ok, const std::string& message) {
  if (!ok) detail::throw_usage_error("GradientBucketer", message);
}
}  // namespace

GradientBucketer::GradientBucketer(Communicator& comm, BucketerOptions options)
    : comm_(comm), options_(options) {
  if (!options_.first_bucket_bytes) {
    options_.first_bucket_bytes =
        comm_.async_progress() ? kDdpFirstBucketBytes : options_.bucket_bytes;
  }
  check(options_.bucket_bytes > 0 && *options_.first_bucket_bytes > 0,
        "bucket_bytes and first_bucket_bytes must be positive");
}

GradientBucketer::~GradientBucketer() {
  // Work handles wait in their destructors; drop them before the staging
  // buffers they write into.
  for (Bucket& b : buckets_) b.work.reset();
}

std::size_t GradientBucketer::add(void* data, std::size_t count, DataType type) {
  check(!fixed_, "add() after the bucket layout was fixed by the first step");
  check(data != nullptr || count == 0, "add(): null buffer with a non-zero count");
  tensors_.push_back(Tensor{data, count, type});
  return tensors_.size() - 1;
}

std::size_t GradientBucketer::tensor_count() const { return tensors_.size(); }

std::size_t GradientBucketer::bucket_count() {
  fix_layout();
  return buckets_.size();
}

std::size_t GradientBucketer::bucket_of(std::size_t index) {
  fix_layout();
  check(index < tensors_.size(), "bucket_of(" + std::to_string(index) + "): no such tensor");
  return tensors_[index].bucket;
}

std::size_t GradientBucketer::bucket_bytes(std::size_t bucket) {
  fix_layout();
  check(bucket < buckets_.size(), "bucket_bytes(" + std::to_string(bucket) + "): no such bucket");
  return buckets_[bucket].bytes;
}

void GradientBucketer::fix_layout() {
  if (fixed_) return;
  fixed_ = true;
  const std::size_t n = tensors_.size();
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t index = options_.order == BucketOrder::kReverse ? n - 1 - k : k;
    Tensor& t = tensors_[index];
    const std::size_t bytes = t.count * data_type_size(t.type);
    if (!buckets_.empty()) {
      const Bucket& last = buckets_.back();
      const std::size_t cap =
          buckets_.size() == 1 ? *options_.first_bucket_bytes : options_.bucket_bytes;
      if (last.type != t.type || last.bytes + bytes > cap) buckets_.emplace_back();
    } else {
      buckets_.emplace_back();
    }
    Bucket& b = buckets_.back();
    if (b.tensors.empty()) b.type = t.type;
    t.bucket = buckets_.size() - 1;
    t.offset = b.bytes;
    b.tensors.push_back(index);
    b.bytes += bytes;
    b.count += t.count;
  }
  for (Bucket& b : buckets_) {
    b.view = contiguous_range(b);
    if (b.view == nullptr && b.tensors.size() > 1) b.staging = comm_.allocate(b.bytes);
  }
  reset_step();
}

void* GradientBucketer::contiguous_range(const Bucket& b) const {
  // The bucket's non-empty tensors in address order (compared as integers:
  // `<` on pointers into unrelated buffers is unspecified).
  struct Range {
    std::uintptr_t begin;
    std::uintptr_t end;
    void* data;
  };
  std::vector<Range> ranges;
  for (const std::size_t index : b.tensors) {
    const Tensor& t = tensors_[index];
    const std::size_t bytes = t.count * data_type_size(t.type);
    const auto begin = reinterpret_cast<std::uintptr_t>(t.data);
    if (bytes != 0) ranges.push_back(Range{begin, begin + bytes, t.data});
  }
  if (ranges.empty()) return tensors_[b.tensors.front()].data;
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& x, const Range& y) { return x.begin < y.begin; });
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    // Only exact adjacency: a gap or an overlap needs the staging buffer.
    if (ranges[i - 1].end != ranges[i].begin) return nullptr;
  }
  return ranges.front().data;
}

void* GradientBucketer::bucket_data(Bucket& b) { return b.view ? b.view : b.staging.get(); }

void GradientBucketer::reset_step() {
  ready_.assign(tensors_.size(), false);
  for (Bucket& b : buckets_) {
    b.pending = b.tensors.size();
    b.work.reset();
  }
  next_launch_ = 0;
}

void GradientBucketer::mark_ready(std::size_t index) {
  fix_layout();
  check(index < tensors_.size(), "mark_ready(" + std::to_string(index) + "): only " +
                                     std::to_string(tensors_.size()) + " tensors registered");
  check(!ready_[index], "mark_ready(" + std::to_string(index) + ") twice in one step");
  ready_[index] = true;
  const Tensor& t = tensors_[index];
  Bucket& b = buckets_[t.bucket];
  if (b.staging) {
    comm_.copy(static_cast<std::byte*>(b.staging.get()) + t.offset, t.data,
               t.count * data_type_size(t.type));
  }
  --b.pending;
  launch_ready_buckets();
}

void GradientBucketer::launch_ready_buckets() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) {
    Bucket& b = buckets_[next_launch_];
    void* data = bucket_data(b);
    ++next_launch_;
    if (comm_.async_progress()) {
      b.work = comm_.allreduce_async(data, data, b.count, b.type, ReduceOp::kAvg);
    } else {
      // Without a progress engine (MPI) a non-blocking allreduce advances
      // only while polled, so overlap buys little, and Open MPI's
      // non-blocking algorithms (libnbc) are slower than its blocking ones:
      // 1 MiB f32 on 2 ranks here, MPI_Iallreduce+MPI_Wait 1-4 ms against
      // MPI_Allreduce 0.14 ms. So the bucket is reduced here and now.
      comm_.allreduce(data, data, b.count, b.type, ReduceOp::kAvg);
    }
  }
}

void GradientBucketer::finish() {
  fix_layout();
  // Whatever happens below, the next step starts from a clean state.
  struct Reset {
    GradientBucketer* self;
    ~Reset() { self->reset_step(); }
  } reset{this};
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    if (!ready_[i]) mark_ready(i);
  }
  for (Bucket& b : buckets_) {
    if (b.work) b.work->wait();
    if (!b.staging) continue;
    for (const std::size_t index : b.tensors) {
      const Tensor& t = tensors_[index];
      comm_.copy(t.data, static_cast<const std::byte*>(b.staging.get()) + t.offset,
                 t.count * data_type_size(t.type));
    }
  }
  comm_.synchronize();
}

}  // namespace xpscale::collectives
