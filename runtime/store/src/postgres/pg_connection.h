#pragma once
// What the PostgreSQL parts of the store share (private to this library):
// statement parameters, results, one checked connection, and the schema's
// migrations. pg_connection.cpp and its users are the one boundary to
// libpq: every call is checked by Connection::check(), which names the
// store (never its password) and the server's own message.
#include <libpq-fe.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace xpscale::pg {

// Text that PostgreSQL's UTF8 text type takes: valid UTF-8 without NUL.
// Trials' stderr tails are arbitrary bytes; their bad bytes, NUL too,
// become U+FFFD (the report shows them the same way).
std::string pg_text(std::string_view s);

// One parameter of a statement, as text; nullopt is SQL NULL.
struct Param {
  std::optional<std::string> text;
  Param(std::nullopt_t) {}  // NOLINT(google-explicit-constructor): reads as SQL
  Param(std::int64_t v) : text(std::to_string(v)) {}   // NOLINT
  Param(int v) : text(std::to_string(v)) {}            // NOLINT
  Param(std::uint64_t v) : text(std::to_string(v)) {}  // NOLINT
  Param(bool v) : text(v ? "true" : "false") {}        // NOLINT
  Param(double v);                                     // NOLINT
  Param(std::string_view v) : text(pg_text(v)) {}      // NOLINT
  Param(const std::string& v) : Param(std::string_view(v)) {}  // NOLINT
  Param(const char* v) : Param(std::string_view(v)) {}         // NOLINT
  template <class T>
  Param(const std::optional<T>& v) {  // NOLINT
    if (v) text = Param(*v).text;
  }
};

// A result, cleared on destruction.
class Result {
 public:
  explicit Result(PGresult* r) : r_(r) {}
  ~Result() { PQclear(r_); }
  Result(Result&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  Result& operator=(Result&&) = delete;

  int rows() const { return PQntuples(r_); }
  bool null(int row, int c) const { return PQgetisnull(r_, row, c) != 0; }
  std::string text(int row, int c) const {
    return std::string(PQgetvalue(r_, row, c), static_cast<std::size_t>(PQgetlength(r_, row, c)));
  }
  std::int64_t i64(int row, int c) const { return std::strtoll(PQgetvalue(r_, row, c), nullptr, 10); }
  // PostgreSQL writes NaN, Infinity and -Infinity, which strtod reads.
  double f64(int row, int c) const { return std::strtod(PQgetvalue(r_, row, c), nullptr); }
  bool boolean(int row, int c) const { return PQgetvalue(r_, row, c)[0] == 't'; }
  std::optional<std::int64_t> opt_i64(int row, int c) const {
    return null(row, c) ? std::nullopt : std::optional(i64(row, c));
  }
  std::optional<double> opt_f64(int row, int c) const {
    return null(row, c) ? std::nullopt : std::optional(f64(row, c));
  }

 private:
  PGresult* r_;
};

// Owns one connection, checks every call, reconnects between transactions.
class Connection {
 public:
  // Connects to `url` (connect_timeout 10 s unless PGCONNECT_TIMEOUT or the
  // URL says otherwise; TCP keepalives). `context` follows the URL in
  // messages (", sweep NAME"). Throws StoreError of category kUser when the
  // server cannot be reached or refuses the password.
  Connection(const std::string& url, std::string context, bool read_only);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // "postgresql://user@host:port/db" and the context.
  std::string where() const { return display_ + context_; }
  bool in_tx() const { return in_tx_; }

  // Runs after every (re)connection, after the session's settings.
  std::function<void()> on_connect_;

  Result exec(const char* sql, std::initializer_list<Param> params = {});
  // A script of several statements, without parameters (migrations).
  void exec_script(const char* sql);
  void begin();
  void commit();
  void rollback() noexcept;

 private:
  Result run(const char* sql, std::initializer_list<Param> params);
  PGresult* check(PGresult* r);
  void ensure_connected();
  void session_setup();
  void describe(const std::string& url);
  std::string redacted(std::string s) const;

  bool read_only_;
  std::string context_, display_, password_;
  PGconn* conn_ = nullptr;
  bool in_tx_ = false;
  std::unordered_map<std::string, std::string> prepared_;  // SQL text -> statement name
};

// Advisory lock keys of the class kLockClass: (kLockClass, 0) guards
// migrations, (kLockClass, sweep id) a sweep's planning.
constexpr int kLockClass = 0x78707363;  // "xpsc"

// The schema version this xpscale reads and writes.
int schema_version();
// The script that brings a store from `from_version` to the next.
const char* migration(int from_version);
// Creates the schema or migrates it forward, in one transaction under the
// migration lock (one process migrates; the others wait and find it done).
// Throws StoreError (kUser) for a newer store, or a schema `xpscale` that
// is not ours.
void migrate(Connection& db);
// Throws StoreError (kUser) unless the database holds a store of this
// version (read-only opens, which never migrate).
void check_schema(Connection& db);

// The server's clock, in Unix seconds: leases are measured on it alone.
constexpr const char* kServerNow = "extract(epoch from clock_timestamp())";

}  // namespace xpscale::pg
