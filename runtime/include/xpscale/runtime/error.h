#pragma once
// The one exception family of libxpscale (see design.md, "Errors").
//
//   Error        a runtime failure inside the library, with context.
//   UserError    the user's input is wrong (config, flags, URLs); the
//                command line turns it into a message and exit status 2.
//   ConfigError  a UserError about a config file, carrying one or more
//                compiler-style diagnostics (file:line:col: path: message).
#include <stdexcept>
#include <string>
#include <vector>

namespace xpscale {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class UserError : public Error {
 public:
  using Error::Error;
};

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
};

class ConfigError : public UserError {
 public:
  explicit ConfigError(std::vector<Diagnostic> diagnostics);
  const std::vector<Diagnostic>& diagnostics() const { return diagnostics_; }

 private:
  std::vector<Diagnostic> diagnostics_;
};

}  // namespace xpscale
