#pragma once
// The file:// Source (plain paths too): stat, recursive listing, pread in
// chunks, and put as temp file + fsync + rename.
#include <memory>

#include "xpscale/sharding/source.h"

namespace xpscale {

std::shared_ptr<Source> make_file_source();

}  // namespace xpscale
