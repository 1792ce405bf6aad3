#include "xpscale/config/diagnostics.h"

namespace xpscale {

std::string Diagnostic::format() const {
  std::string out;
  if (!where.file.empty()) {
    out += where.file;
    if (where.line > 0) {
      out += ':' + std::to_string(where.line);
      if (where.column > 0) out += ':' + std::to_string(where.column);
    }
    out += ": ";
  }
  if (!path.empty()) out += path + ": ";
  out += message;
  if (!note.empty()) out += "\n  note: " + note;
  return out;
}

namespace {
std::string join(const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const auto& d : diagnostics) {
    if (!out.empty()) out += '\n';
    out += d.format();
  }
  return out;
}
}  // namespace

ConfigError::ConfigError(std::vector<Diagnostic> diagnostics)
    : UserError(join(diagnostics)), diagnostics_(std::move(diagnostics)) {}

}  // namespace xpscale
