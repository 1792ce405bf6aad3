// The live dashboard (dashboard.h) on cpp-httplib (Debian libcpp-httplib-dev).
#include "xpscale/report/dashboard.h"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <utility>

#include <httplib.h>

#include "xpscale/core/error.h"
#include "xpscale/report/report.h"
#include "xpscale/store/postgres_store.h"
#include "xpscale/store/store.h"

namespace xpscale::report {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int kWorkers = 64;      // httplib worker threads
constexpr int kMaxStreams = 48;   // open /events streams; the rest get 503

// What the store files look like now (size and change time of each, its
// WAL included): when this text changes the data is recomputed.
std::string stores_key(const std::string& out_dir) {
  std::string key;
  for (const auto& path : store_paths(out_dir))
    for (const std::string suffix : {"", "-wal"}) {
      struct stat st {};
      const std::string p = path.string() + suffix;
      if (::stat(p.c_str(), &st) != 0) continue;
      key += p;
      key += ':' + std::to_string(st.st_size) + ':' + std::to_string(st.st_mtim.tv_sec) + '.' +
             std::to_string(st.st_mtim.tv_nsec) + ';';
    }
  return key;
}

std::string random_token() {
  std::random_device rd;  // getrandom(2) on Linux
  std::string t;
  char buf[9];
  for (int i = 0; i < 4; ++i) {
    std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(rd()));
    t += buf;
  }
  return t;
}

// Compares in time independent of where the strings differ.
bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "this-node";
  return buf;
}

}  // namespace

bool is_loopback_host(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr a{};
  return ::inet_pton(AF_INET, host.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

struct Dashboard::Impl {
  httplib::Server server;
  nlohmann::json data;  // the latest data, for the page at "/"
};

Dashboard::Dashboard(DashboardOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  if (options_.port < 0 || options_.port > 65535)
    throw UserError("dashboard: --port must be in [0, 65535], got " +
                    std::to_string(options_.port));
  // A token always, as Jupyter does: on a shared node every user reaches
  // 127.0.0.1, and a web page on the laptop at the end of an ssh tunnel
  // could reach it through DNS rebinding; neither knows the token.
  if (options_.token.empty()) options_.token = random_token();
  auto& server = impl_->server;
  // Each open page holds an /events stream, and a stream holds a worker
  // thread: enough of them for many pages, and idle keep-alive
  // connections let go of theirs after a second.
  server.new_task_queue = [] { return new httplib::ThreadPool(kWorkers); };
  server.set_keep_alive_timeout(1);

  // Every answer: no caching, no sniffing, and a page that may run only
  // its own inline scripts and reach only this server.
  server.set_default_headers(
      {{"Cache-Control", "no-store"},
       {"X-Content-Type-Options", "nosniff"},
       {"Referrer-Policy", "no-referrer"},
       {"Content-Security-Policy",
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'"}});
  server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    std::string given = req.get_param_value("token");
    const std::string auth = req.get_header_value("Authorization");
    if (given.empty() && auth.rfind("Bearer ", 0) == 0) given = auth.substr(7);
    if (same_secret(given, options_.token)) return httplib::Server::HandlerResponse::Unhandled;
    res.status = 403;
    res.set_content(
        "xpscale dashboard: this address needs the token that `xpscale dashboard` printed "
        "(open the URL it printed, with ?token=...)\n",
        "text/plain");
    return httplib::Server::HandlerResponse::Handled;
  });
  // The page and the data go out as they are, through a content provider:
  // httplib compresses a plain body with Brotli at its highest level, which
  // for a 10 MB page costs seconds of a core per request.
  // Each answer is counted until written, so that stop() lets it finish:
  // httplib writes a provider's body only while its server runs, and an
  // answer begun as it stops goes out as headers without their body.
  auto send = [this](httplib::Response& res, std::shared_ptr<const std::string> body,
                     const char* type) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closing_) {
        // Past stop()'s wait: a body that httplib would cut to nothing
        // after the headers; a whole short answer instead.
        res.status = 503;
        res.set_content("xpscale dashboard: stopped\n", "text/plain");
        return;
      }
      ++sending_;
      last_send_ = Clock::now();
    }
    const std::size_t size = body->size();
    res.set_content_provider(
        size, type,
        [body](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
          return sink.write(body->data() + offset, length);
        },
        [this](bool) {
          {
            std::lock_guard<std::mutex> lock(mu_);
            --sending_;
          }
          changed_.notify_all();
        });
  };
  server.Get("/", [this, send](const httplib::Request&, httplib::Response& res) {
    std::shared_ptr<const std::string> page;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (page_version_ != version_) {
        page_ = std::make_shared<const std::string>(html_page(impl_->data));
        page_version_ = version_;
      }
      page = page_;
    }
    send(res, page, "text/html; charset=utf-8");
  });
  server.Get("/data.json", [this, send](const httplib::Request&, httplib::Response& res) {
    std::shared_ptr<const std::string> data;
    {
      std::lock_guard<std::mutex> lock(mu_);
      res.set_header("X-Xpscale-Version", std::to_string(version_));
      data = data_;
    }
    send(res, data, "application/json");
  });
  server.Get("/events", [this](const httplib::Request&, httplib::Response& res) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (streams_ >= kMaxStreams) {
        res.status = 503;
        res.set_content("xpscale dashboard: too many open pages\n", "text/plain");
        return;
      }
      ++streams_;
    }
    auto seen = std::make_shared<std::uint64_t>(0);
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, seen](std::size_t, httplib::DataSink& sink) {
          std::unique_lock<std::mutex> lock(mu_);
          // A comment every 2 s: a closed page's stream fails to write and
          // gives its thread back within 2 s.
          changed_.wait_for(lock, std::chrono::seconds(2),
                            [&] { return stopping_ || version_ != *seen; });
          std::string msg;
          if (stopping_) {
            // The end, with the last data in it, so that the page shows how
            // the sweep ended and stops listening instead of reconnecting
            // to a server that is gone.
            msg = "event: end\ndata: " + *data_ + "\n\n";
            lock.unlock();
            sink.write(msg.data(), msg.size());
            sink.done();
            return true;
          }
          if (version_ != *seen) {
            *seen = version_;
            msg = "event: version\ndata: " + std::to_string(version_) + "\n\n";
          } else {
            msg = ": keep-alive\n\n";
          }
          lock.unlock();
          return sink.write(msg.data(), msg.size());
        },
        [this](bool) {
          {
            std::lock_guard<std::mutex> lock(mu_);
            --streams_;
          }
          changed_.notify_all();
        });
  });

  port_ = options_.port == 0 ? server.bind_to_any_port(options_.host)
                             : (server.bind_to_port(options_.host, options_.port)
                                    ? options_.port
                                    : -1);
  if (port_ < 0)
    throw UserError("dashboard: cannot listen on " + options_.host + ":" +
                    std::to_string(options_.port) +
                    " (the port is taken, or the address is not this host's); pick another "
                    "with --port or --host");
  refresh();
}

Dashboard::~Dashboard() {
  stop();
  if (server_thread_.joinable()) server_thread_.join();
  if (refresh_thread_.joinable()) refresh_thread_.join();
}

std::string Dashboard::url() const {
  const std::string host = options_.host == "0.0.0.0" || options_.host == "::"
                               ? host_name()
                               : options_.host;
  std::string u = "http://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) +
                  ":" + std::to_string(port_) + "/";
  if (!options_.token.empty()) u += "?token=" + options_.token;
  return u;
}

std::string Dashboard::tunnel_hint() const {
  const std::string node = host_name(), port = std::to_string(port_);
  const std::string target = is_loopback_host(options_.host) ? "127.0.0.1" : node;
  std::string hint = "from a laptop: ssh -N -L " + port + ":" + target + ":" + port + " ";
  hint += is_loopback_host(options_.host) ? "-J LOGIN_NODE " + node : "LOGIN_NODE";
  hint += ", then open http://localhost:" + port + "/";
  if (!options_.token.empty()) hint += "?token=" + options_.token;
  return hint;
}

void Dashboard::refresh() {
  std::lock_guard<std::mutex> serial(refresh_mu_);
  std::string key;
  nlohmann::json data;
  try {
    // A PostgreSQL sweep has no files to watch: a cheap query on one
    // connection kept open says when it changed.
    if (const auto pointer = read_store_pointer(options_.out_dir)) {
      if (!marker_store_)
        marker_store_ =
            std::make_unique<PostgresStore>(pointer->url, pointer->sweep, Store::Mode::kReadOnly);
      key = marker_store_->change_marker();
    } else {
      key = stores_key(options_.out_dir);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (version_ > 0 && key == stores_key_) return;
    }
    const auto stores = open_out_dir_stores(options_.out_dir, Store::Mode::kReadOnly);
    std::vector<const Store*> views;
    for (const auto& s : stores) views.push_back(s.get());
    ReportOptions o;
    o.out_dir = options_.out_dir;
    o.live = true;
    o.importance = false;
    data = report_data(views, o);
    update_importance(data);
  } catch (const std::exception& e) {
    // At start, a store that cannot be read is the user's to fix (as for
    // `xpscale report`). Later (a store replaced, busy past its timeout):
    // the last data stays, and the page says why it is not fresher.
    std::lock_guard<std::mutex> lock(mu_);
    if (version_ == 0)
      throw UserError(std::string("dashboard: ") + e.what());
    marker_store_.reset();  // reconnect next time
    const std::string why =
        std::string("The store could not be read (the data shown is older): ") + e.what();
    if (impl_->data.value("error", "") == why) return;
    data = impl_->data;
    data["error"] = why;
  }
  // version: the one this data will have, so that the page can tell a
  // newer one on /events.
  data["dashboard"] = {{"url", url()}, {"tunnel", tunnel_hint()}, {"version", version_ + 1}};
  std::string text = data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  {
    std::lock_guard<std::mutex> lock(mu_);
    impl_->data = std::move(data);
    data_ = std::make_shared<const std::string>(std::move(text));
    stores_key_ = key;
    ++version_;
  }
  changed_.notify_all();
}

// The forest behind the importance chart is the data's costliest part: it
// is grown on one thread, again only when more trials have a value, and at
// most every 10 s (or 10 times as long as it took), the chart showing the
// last one in between.
void Dashboard::update_importance(nlohmann::json& data) {
  std::size_t valued = 0;
  for (const auto& t : data["trials"])
    if (t["status"] != "failed" && t["best"].is_number()) ++valued;
  const double now = std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
  const bool due = importance_at_ == 0 ||
                   (valued != importance_trials_ &&
                    now - importance_at_ >= std::max(10.0, 10 * importance_took_));
  if (due) {
    const auto start = Clock::now();
    add_importance(data, 1);
    importance_took_ = std::chrono::duration<double>(Clock::now() - start).count();
    importance_at_ = now;
    importance_trials_ = valued;
    importance_ = {data["importance"], data["importance_note"]};
  } else {
    data["importance"] = importance_[0];
    data["importance_note"] = importance_[1];
  }
}

void Dashboard::refresh_loop() {
  while (!stopping_) {
    const auto start = Clock::now();
    try {
      refresh();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "xpscale dashboard: %s\n", e.what());
    }
    const double took = std::chrono::duration<double>(Clock::now() - start).count();
    // At most a fifth of one core, however large the sweep.
    const double wait = std::max(options_.refresh_s, 4 * took);
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait_for(lock, std::chrono::duration<double>(wait), [&] { return stopping_.load(); });
  }
}

void Dashboard::serve() {
  if (!refresh_thread_.joinable()) refresh_thread_ = std::thread([this] { refresh_loop(); });
  serving_ = true;
  if (!stopping_) impl_->server.listen_after_bind();
  serving_ = false;
}

void Dashboard::start() { server_thread_ = std::thread([this] { serve(); }); }

void Dashboard::stop() {
  if (stopping_) return;
  // The last look at the store, so that the pages end on the sweep's end.
  try {
    refresh();
  } catch (const std::exception&) {
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  {
    // The open event streams say `end` and close (a second at most), so
    // that pages stop listening rather than see a cut stream.
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait_for(lock, 1s, [&] { return streams_ == 0; });
    // Then the answers being written, and a fetch that a page began just
    // before its stream said `end` (3 s at most, for a page that stopped
    // reading).
    const auto until = Clock::now() + 3s;
    while (Clock::now() < until &&
           (sending_ > 0 || Clock::now() - last_send_ < 200ms))
      changed_.wait_for(lock, 50ms);
    closing_ = true;
  }
  // httplib's stop() does nothing before its loop runs: wait for the loop
  // when serve() is about to enter it.
  while (serving_ && !impl_->server.is_running()) std::this_thread::sleep_for(1ms);
  impl_->server.stop();
}

}  // namespace xpscale::report
