#include "xpscale/config/diagnostics.h"

namespace xpscale {

namespace {
std::string format_with(const Diagnostic& d, const char* severity) {
  const SourceLocation& where = d.where;
  std::string out;
  if (!where.file.empty()) {
    out += where.file;
    if (where.line > 0) {
      out += ':' + std::to_string(where.line);
      if (where.column > 0) out += ':' + std::to_string(where.column);
    }
    out += ": ";
  }
  out += severity;
  if (!d.path.empty()) out += d.path + ": ";
  out += d.message;
  if (!d.note.empty()) out += "\n  note: " + d.note;
  return out;
}
}  // namespace

std::string Diagnostic::format() const { return format_with(*this, ""); }

std::string Diagnostic::format_warning() const { return format_with(*this, "warning: "); }

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
