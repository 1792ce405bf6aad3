#pragma once
// A throwaway PostgreSQL 15 server for GoogleTest suites: tests/support/pg-server
// run into a fresh directory under /tmp, loopback only, a free port, and a
// watchdog that stops the server and removes its directory once this process
// is gone (even when it crashes or is killed), or after two hours.
//
//   PgTestServer pg;                          // ~1-3 s; throws on failure
//   pg.url()       postgresql://xpscale@127.0.0.1:PORT/xpscale (no password)
//   pg.password()  the xpscale role's password (scram-sha-256 over TCP)
//   pg.psql("SELECT count(*) FROM trials")   superuser, unix socket, -At
//   pg.pause(); pg.resume();                 same port, same data
//
//   auto& pg = shared_pg_server();            one per test process, lazily
//   auto db = pg.create_database();           CREATE DATABASE t_<random> OWNER xpscale
//   auto url = pg.url_for_database(db);
//
// With XPSCALE_TEST_PG_DIR set (a directory where `pg-server start` ran, e.g.
// from a ctest FIXTURES_SETUP test), shared_pg_server() uses that server
// instead of starting one, and leaves it running.
//
// The including target needs the script's path:
//   target_compile_definitions(T PRIVATE
//     XPSCALE_PG_SERVER_SCRIPT="${PROJECT_SOURCE_DIR}/tests/support/pg-server")
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef XPSCALE_PG_SERVER_SCRIPT
#error "define XPSCALE_PG_SERVER_SCRIPT (path of tests/support/pg-server) for this target"
#endif

extern char** environ;

namespace xpscale::test {

namespace pg_detail {

struct Result {
  int status = -1;  // exit status; -1 when killed by a signal
  std::string out, err;
};

// Runs argv without a shell, capturing stdout and stderr apart (psql's
// results must not mix with its notices).
inline Result run(const std::vector<std::string>& argv) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe: " + std::string(std::strerror(errno)));
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    throw std::runtime_error("pipe: " + std::string(std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(rc));
  }
  Result r;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) close(f.fd);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  r.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
  return r;
}

inline std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) throw std::runtime_error("cannot read " + path);
  return line;
}

inline std::string random_hex(std::size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::random_device rd;
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += digits[rd() % 16];
  return s;
}

}  // namespace pg_detail

class PgTestServer {
 public:
  struct Attach {
    std::string dir;  // where `pg-server start` ran; not stopped by us
  };

  // Starts a server in a fresh directory under base_dir (it must be reachable
  // by the unprivileged user the server runs as when tests run as root, and
  // short: the unix socket lives inside). Throws std::runtime_error with the
  // script's output (and the server log's tail) on failure.
  explicit PgTestServer(const std::string& base_dir = "/tmp") : owned_(true) {
    std::string tmpl = base_dir + "/xpscale-pg-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr)
      throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
    dir_ = tmpl;
    const auto r = script({"start", dir_, "--owner", std::to_string(getpid())});
    if (r.status != 0) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      throw std::runtime_error("pg-server start " + dir_ + " failed (exit " +
                               std::to_string(r.status) + "):\n" + r.out + r.err);
    }
    load();
  }

  explicit PgTestServer(Attach a) : dir_(std::move(a.dir)), owned_(false) { load(); }

  ~PgTestServer() {
    if (!owned_) return;
    try {
      (void)script({"stop", dir_});
    } catch (...) {  // the watchdog cleans up after us
    }
  }

  PgTestServer(const PgTestServer&) = delete;
  PgTestServer& operator=(const PgTestServer&) = delete;

  const std::string& url() const { return url_; }
  const std::string& password() const { return password_; }
  const std::string& dir() const { return dir_; }
  int port() const { return port_; }

  // The same URL with the password in it, for clients that take no
  // PGPASSWORD (the password is hex: no escaping needed).
  std::string url_with_password(const std::string& database = "xpscale") const {
    return "postgresql://xpscale:" + password_ + "@127.0.0.1:" + std::to_string(port_) + "/" +
           database;
  }

  std::string url_for_database(const std::string& name) const {
    return "postgresql://xpscale@127.0.0.1:" + std::to_string(port_) + "/" + name;
  }

  // Creates an empty database t_<random> owned by xpscale; returns its name.
  std::string create_database() const {
    const std::string name = "t_" + pg_detail::random_hex(12);
    (void)psql("CREATE DATABASE " + name + " OWNER xpscale");
    return name;
  }

  // Runs SQL as the superuser over the unix socket (psql -Atc, database
  // xpscale unless given); returns stdout without the final newline. Throws
  // with psql's messages when it fails.
  std::string psql(const std::string& sql, const std::string& database = "") const {
    std::vector<std::string> args = {"psql", dir_, "-v", "ON_ERROR_STOP=1", "-Atc", sql};
    if (!database.empty()) {
      args.push_back("-d");
      args.push_back(database);
    }
    auto r = script(args);
    if (r.status != 0)
      throw std::runtime_error("psql failed (exit " + std::to_string(r.status) + "): " + sql +
                               "\n" + r.err + r.out);
    if (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
    return r.out;
  }

  // Stops the server (fast shutdown: clients are disconnected); resume()
  // starts it again on the same port with the same data.
  void pause() const { checked({"pause", dir_}); }
  void resume() const { checked({"resume", dir_}); }

 private:
  static pg_detail::Result script(std::vector<std::string> args) {
    args.insert(args.begin(), XPSCALE_PG_SERVER_SCRIPT);
    return pg_detail::run(args);
  }

  void checked(const std::vector<std::string>& args) const {
    const auto r = script(args);
    if (r.status != 0)
      throw std::runtime_error("pg-server " + args[0] + " " + dir_ + " failed (exit " +
                               std::to_string(r.status) + "):\n" + r.out + r.err);
  }

  void load() {
    url_ = pg_detail::read_line(dir_ + "/url");
    password_ = pg_detail::read_line(dir_ + "/password");
    port_ = std::stoi(pg_detail::read_line(dir_ + "/port"));
  }

  std::string dir_, url_, password_;
  int port_ = 0;
  bool owned_;
};

// One server per test process, started on first use and stopped at exit
// (static destruction; the watchdog covers crashes). Thread-safe start.
inline PgTestServer& shared_pg_server() {
  static PgTestServer server = [] {
    if (const char* d = std::getenv("XPSCALE_TEST_PG_DIR"); d != nullptr && *d != '\0')
      return PgTestServer(PgTestServer::Attach{d});
    return PgTestServer();
  }();
  return server;
}

}  // namespace xpscale::test
