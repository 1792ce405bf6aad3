#pragma once
// gzip-compressed shards (.tar.gz, .tgz): a Source over another one that
// serves the decompressed bytes (see gzip_source.cpp for how).
#include <memory>

#include "xpscale/sharding/source.h"

namespace xpscale {

bool is_gzip_url(const Url& url);  // the path ends in .gz or .tgz
// The Source of the compressed bytes: open_source() as if the URL were not
// compressed (source.cpp).
std::shared_ptr<Source> open_plain_source(const Url& url);
std::shared_ptr<Source> make_gzip_source();

}  // namespace xpscale
