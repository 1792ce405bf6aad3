#pragma once
// Text from outside (a trial's stderr) as valid UTF-8, for JSON, the store
// and terminals.
#include <string>
#include <string_view>

namespace xpscale {

// Replaces every byte that does not start a valid UTF-8 sequence (overlong
// forms, surrogates and code points past U+10FFFF included) by U+FFFD. NUL
// is valid UTF-8 and stays.
std::string valid_utf8(std::string_view s);

}  // namespace xpscale
