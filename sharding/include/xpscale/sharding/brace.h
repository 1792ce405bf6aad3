#pragma once
// Shard-list patterns as WebDataset and bash write them:
//   "s3://b/train-{000000..000146}.tar"  -> train-000000.tar ... train-000146.tar
//   "data/{train,val}-{0..1}.tar"        -> train-0, train-1, val-0, val-1
// Written by hand because no packaged C++ library does bash brace
// expansion, and the grammar needed here is a small subset of it.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace xpscale {

// Upper bound on the memory an expansion may take, counted as the bytes of
// all results plus sizeof(std::string) per result, so that no pattern can
// exhaust memory whatever max_results allows.
inline constexpr std::size_t kMaxBraceExpansionBytes = std::size_t{256} << 20;

// Expands every brace group of pattern, left to right; the leftmost group
// varies slowest (bash order). A group is either
//   {a,b,c}    a list: each item verbatim, empty items allowed ("{,.bak}")
//   {lo..hi}   a range of non-negative decimal integers, ascending or
//              descending, both bounds included. When a bound longer than
//              one digit starts with '0', every number is zero-padded to
//              the width of the wider bound ({08..10} -> 08 09 10,
//              {000000..000015} -> 000000 ... 000015); otherwise none is.
// A group with a ',' is a list even if it contains "..". Text outside
// groups is copied to every result. A pattern without groups yields itself.
// Groups do not nest, and there is no escape for literal braces.
//
// Throws ShardingError naming the pattern and the 0-based offset of the
// fault for: an unbalanced '{' or '}', a '{' inside a group, a group with
// neither ',' nor "..", an empty range bound, a bound that is not a decimal
// integer (including signs and bash's {lo..hi..step}), a bound above
// 2^64-1, more than max_results results, or an expansion over
// kMaxBraceExpansionBytes. Runs in time linear in the pattern plus the
// output, so it returns or throws promptly on any input.
std::vector<std::string> expand_braces(std::string_view pattern,
                                       std::size_t max_results = 1'000'000);

}  // namespace xpscale
