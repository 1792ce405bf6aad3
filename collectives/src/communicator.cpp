// The default (host memory) staging helpers of Communicator.
#include <cstring>
#include <new>

#include "xpscale/collectives/communicator.h"

namespace xpscale::collectives {

namespace {
constexpr std::align_val_t kAlignment{256};
void release_host(void* p) noexcept { ::operator delete(p, kAlignment); }
}  // namespace

Communicator::Buffer Communicator::allocate(std::size_t bytes) {
  if (bytes == 0) return Buffer(nullptr, BufferRelease{release_host});
  return Buffer(::operator new(bytes, kAlignment), BufferRelease{release_host});
}

void Communicator::copy(void* dst, const void* src, std::size_t bytes) {
  if (bytes != 0 && dst != src) std::memmove(dst, src, bytes);
}

}  // namespace xpscale::collectives
