#pragma once
// Diagnostics: errors in a config file, reported the way a compiler does
// (sweep.yaml:12:7: parameters.lr.min: expected a number, got "fast"),
// all of them at once, as one ConfigError (a UserError: exit status 2).
#include <string>
#include <utility>
#include <vector>

#include "xpscale/core/error.h"

namespace xpscale {

// Where a diagnostic points. line and column are 1-based; 0 means unknown
// (e.g. an error about the file as a whole).
struct SourceLocation {
  std::string file;
  int line = 0;
  int column = 0;
};

struct Diagnostic {
  Diagnostic(SourceLocation where_, std::string path_, std::string message_, std::string note_ = {})
      : where(std::move(where_)),
        path(std::move(path_)),
        message(std::move(message_)),
        note(std::move(note_)) {}

  SourceLocation where;
  std::string path;     // key path such as "parameters.lr.min"; may be empty
  std::string message;  // "expected a number, got \"fast\""
  std::string note;     // optional second line, e.g. "did you mean 'min'?"

  // "sweep.yaml:12:7: parameters.lr.min: expected a number, got \"fast\""
  // followed by "  note: ..." when there is a note.
  std::string format() const;
  // The same with "warning: " after the place:
  // "sweep.yaml:3:1: warning: lr: key 'lr' is given twice ...".
  std::string format_warning() const;
};

class ConfigError : public UserError {
 public:
  explicit ConfigError(std::vector<Diagnostic> diagnostics);
  const std::vector<Diagnostic>& diagnostics() const { return diagnostics_; }

 private:
  std::vector<Diagnostic> diagnostics_;
};

}  // namespace xpscale
