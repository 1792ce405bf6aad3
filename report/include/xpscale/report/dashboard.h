#pragma once
// The live dashboard: the report page served over HTTP, refreshed as the
// sweep's trials report (`xpscale dashboard OUT_DIR`, `xpscale run
// --dashboard`).
//
//   GET /            the report page (report.h) with the data of now, live
//   GET /data.json   the data (report/web/DATA.md), recomputed when a store
//                    file changed; header X-Xpscale-Version counts versions
//   GET /events      Server-Sent Events: `event: version`, `data: N` each
//                    time a new version is ready (the page then fetches
//                    /data.json), a comment every 15 s to keep proxies open
//
// It reads the stores read-only (SQLite readers never block the sweep's
// writer) and recomputes at most once per refresh interval, and never more
// than a fifth of the time (an interval is at least 4 times the last
// recompute); parameter importance, the costliest part, is recomputed at
// most every 10 s on one thread. An open dashboard costs the sweep little
// (bench/report/dashboard_cost.sh).
//
// Bound to 127.0.0.1 by default. Every request needs the token (`?token=`
// or `Authorization: Bearer`), drawn at start (or --token) and printed in
// the URL: another user of the node, or a web page reaching the ssh
// tunnel through DNS rebinding, does not know it.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

namespace xpscale {
class PostgresStore;  // xpscale/store/postgres_store.h
}

namespace xpscale::report {

struct DashboardOptions {
  std::string out_dir;
  std::string host = "127.0.0.1";
  int port = 8265;  // 0: any free port (port() tells which)
  // Needed off loopback; empty there: one is drawn (random, 128 bits).
  std::string token;
  double refresh_s = 0.5;
};

// Whether `host` is a loopback address (127.0.0.0/8, ::1, localhost).
bool is_loopback_host(const std::string& host);

class Dashboard {
 public:
  // Binds the port: throws UserError when it is taken or the host cannot
  // be bound. Serves nothing until start() or serve().
  explicit Dashboard(DashboardOptions options);
  ~Dashboard();
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  int port() const { return port_; }
  const std::string& token() const { return options_.token; }
  // The address to open, with the token when one is needed.
  std::string url() const;
  // How to reach it from a laptop through the login node (ssh -L).
  std::string tunnel_hint() const;

  // Serves on this thread until stop().
  void serve();
  // Serves on a thread of its own until stop() or destruction.
  void start();
  // Safe from any thread; idempotent.
  void stop();

 private:
  struct Impl;
  void refresh_loop();
  void refresh();
  void update_importance(nlohmann::json& data);

  DashboardOptions options_;
  int port_ = 0;
  std::unique_ptr<Impl> impl_;
  std::thread server_thread_, refresh_thread_;
  std::atomic<bool> stopping_{false}, serving_{false};
  std::mutex mu_;
  std::mutex refresh_mu_;  // one refresh() at a time (the refresh thread, stop())
  std::condition_variable changed_;
  std::shared_ptr<const std::string> data_;  // the latest data, JSON text
  std::shared_ptr<const std::string> page_;  // the page of version page_version_
  std::uint64_t page_version_ = 0;
  std::uint64_t version_ = 0;  // bumped with each new data_
  int streams_ = 0;            // open /events streams
  int sending_ = 0;            // page and data answers being written
  bool closing_ = false;       // stop() is past waiting for them
  std::chrono::steady_clock::time_point last_send_{};  // when the latest of them began
  std::string stores_key_;     // what the store files looked like for data_
  // A PostgreSQL sweep's connection for its change marker (refresh thread).
  std::unique_ptr<PostgresStore> marker_store_;
  // The last importance computed (refresh thread only): when, how long it
  // took, over how many trials, and [importance, importance_note].
  double importance_at_ = 0, importance_took_ = 0;
  std::size_t importance_trials_ = 0;
  nlohmann::json importance_;
};

}  // namespace xpscale::report
