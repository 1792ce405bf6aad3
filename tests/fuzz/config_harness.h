#pragma once
// What the config fuzzers check for one input: loading it, planning a few
// trials and building their commands either succeeds or throws a UserError
// (which the command line turns into a message and exit status 2). Any other
// exception escapes, and a crash, abort, hang or sanitizer report is a bug.
#include <string>

namespace xpscale::fuzz {

// Returns true if the text loaded as a valid config, false if it was
// rejected with a UserError.
bool check_config_text(const std::string& text);

}  // namespace xpscale::fuzz
