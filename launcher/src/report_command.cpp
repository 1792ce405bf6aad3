// xpscale report / export: what a sweep's store holds.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <boost/program_options.hpp>

#include "commands.h"
#include "xpscale/config/command.h"
#include "xpscale/report/report.h"
#include "xpscale/store/store.h"

namespace po = boost::program_options;

namespace xpscale::cli {
namespace {

constexpr const char* kReportUsage =
    "usage: xpscale report OUT_DIR [--top K] [--format table|csv|json]\n"
    "       xpscale report OUT_DIR --html report.html\n\n"
    "The stores of a job array's tasks (xpscale.task<k>.db) are merged.\n"
    "The sweep's leaderboard: trials sorted by the best value of the config's metric\n"
    "(its goal decides the order), then trials without a value, with their status,\n"
    "parameters and, for failed ones, the reason. Reads the store; changes nothing.\n\n"
    "--html writes the sweep's pictures into one self-contained page (leaderboard,\n"
    "learning curves, history, parallel coordinates, parameter importance, cluster\n"
    "timeline) that opens from disk with no network; it works on a running sweep.\n\n"
    "options";

constexpr const char* kExportUsage =
    "usage: xpscale export OUT_DIR [--metrics]\n\n"
    "Writes the store as JSON lines: the sweep, then one line per trial with its\n"
    "attempts (and with --metrics its reported metrics).\n\noptions";

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// Every store of out_dir: one, one per task of a job array (their trials
// are disjoint: task k holds trials i with i % n == k), or the PostgreSQL
// sweep its xpscale.store names.
std::vector<std::unique_ptr<Store>> open_stores(const std::string& out_dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(out_dir, ec))
    throw UserError(out_dir + (std::filesystem::exists(out_dir, ec) ? " is not a directory"
                                                                    : " does not exist") +
                    "; pass the out_dir of a sweep");
  std::vector<std::unique_ptr<Store>> stores;
  try {
    stores = open_out_dir_stores(out_dir, Store::Mode::kReadOnly);
  } catch (const StoreError& e) {
    throw UserError(e.what());
  }
  if (stores.empty())
    throw UserError(out_dir + " holds no sweep store (no " + store_path(out_dir).string() +
                    ", no xpscale.task<k>.db files of a job array, no xpscale.store naming a "
                    "PostgreSQL store); pass the out_dir of a sweep");
  return stores;
}

// The sweep row of the first store that has one, with `planned` summed
// over the stores (each array task plans its share).
std::optional<SweepRow> merged_sweep(const std::vector<std::unique_ptr<Store>>& stores) {
  std::optional<SweepRow> merged;
  std::uint64_t planned = 0;
  for (const auto& s : stores) {
    auto row = s->sweep();
    if (!row) continue;
    planned += row->planned;
    if (!merged) merged = std::move(row);
  }
  if (merged) merged->planned = planned;
  return merged;
}

std::vector<TrialRow> merged_trials(const std::vector<std::unique_ptr<Store>>& stores) {
  std::vector<TrialRow> all;
  for (const auto& s : stores)
    for (auto& t : s->trials()) all.push_back(std::move(t));
  std::sort(all.begin(), all.end(),
            [](const TrialRow& a, const TrialRow& b) { return a.id < b.id; });
  return all;
}

// Writes the HTML report of out_dir's stores to `path`, whole or not at all:
// the page goes to a temporary file beside it that is renamed over `path`.
void write_html_report(const std::vector<std::unique_ptr<Store>>& stores,
                       const std::string& out_dir, const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw UserError("report: --html " + path + ": the folder " + dir.string() +
                    " does not exist");
  if (fs::is_directory(target, ec))
    throw UserError("report: --html " + path + " is a folder; name the file to write");
  // The page replaces FILE by a rename: a device, FIFO or socket there
  // would be replaced rather than written to, so only a regular file (or
  // none) is taken.
  const auto status = fs::status(target, ec);
  if (fs::exists(status) && !fs::is_regular_file(status))
    throw UserError("report: --html " + path + " is not a regular file; name a file to write");
  std::vector<const Store*> views;
  for (const auto& s : stores) views.push_back(s.get());
  report::ReportOptions options;
  options.out_dir = out_dir;
  const std::string page = report::html_page(report::report_data(views, options));
  // A fresh name made with O_EXCL (mkstemp): a file or symlink someone
  // planted at a predictable name is never written through.
  std::string tmp_name = (dir / (target.filename().string() + ".tmp.XXXXXX")).string();
  const int fd = ::mkstemp(tmp_name.data());
  if (fd < 0)
    throw UserError("report: cannot create a file in " + dir.string() + ": " +
                    std::strerror(errno));
  const fs::path tmp = tmp_name;
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd, 0666 & ~mask);  // as a plain create would: mkstemp makes it 0600
  std::size_t done = 0;
  int err = 0;
  while (done < page.size()) {
    const ssize_t n = ::write(fd, page.data() + done, page.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    fs::remove(tmp, ec);
    throw UserError("report: writing " + tmp.string() + " failed: " + std::strerror(err));
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw UserError("report: cannot rename " + tmp.string() + " to " + path + ": " + ec.message());
  }
  std::cout << "wrote " << path << " (" << page.size() / 1024 << " KiB)\n";
}

}  // namespace

int report_command(const std::vector<std::string>& args) {
  std::int64_t top = 0;
  std::string format = "table";
  std::string html;
  po::options_description desc(kReportUsage);
  desc.add_options()("help,h", "show this help")("top", po::value<std::int64_t>(&top),
                                                 "only the best K trials")(
      "format", po::value<std::string>(&format)->default_value("table"), "table | csv | json")(
      "html", po::value<std::string>(&html), "write the HTML report to this file");
  po::variables_map vm;
  const std::string out_dir = parse_command_line(args, desc, "out_dir", vm);
  if (vm.count("help")) {
    std::cout << desc;
    return kExitOk;
  }
  if (out_dir.empty()) throw UserError("report: missing OUT_DIR; see --help");
  if (format != "table" && format != "csv" && format != "json")
    throw UserError("report: --format must be table, csv or json, got '" + format + "'");
  if (vm.count("top") && top < 1) throw UserError("report: --top must be >= 1");
  if (vm.count("html") && (vm.count("top") || !vm["format"].defaulted()))
    throw UserError("report: --html shows every trial; it takes neither --top nor --format");
  if (vm.count("html") && html.empty()) throw UserError("report: --html needs a file name");

  const auto stores = open_stores(out_dir);
  if (!html.empty()) {
    write_html_report(stores, out_dir, html);
    return kExitOk;
  }
  const auto sweep = merged_sweep(stores);
  const std::string metric = sweep ? sweep->metric : "";
  const bool maximize = sweep && sweep->goal == Goal::kMaximize;
  auto trials = merged_trials(stores);
  // Trials that did not fail first, then failed ones (a failed trial's
  // early value is no result); within each, those with a value, best
  // first; then the rest by id.
  std::stable_sort(trials.begin(), trials.end(), [&](const TrialRow& a, const TrialRow& b) {
    const bool a_failed = a.status == TrialStatus::kFailed,
               b_failed = b.status == TrialStatus::kFailed;
    if (a_failed != b_failed) return b_failed;
    if (a.best_value.has_value() != b.best_value.has_value()) return a.best_value.has_value();
    if (!a.best_value) return a.id < b.id;
    return maximize ? *a.best_value > *b.best_value : *a.best_value < *b.best_value;
  });
  if (top > 0 && static_cast<std::size_t>(top) < trials.size())
    trials.resize(static_cast<std::size_t>(top));

  std::vector<std::string> param_names;
  for (const auto& t : trials)
    for (const auto& [k, v] : t.params.items())
      if (std::find(param_names.begin(), param_names.end(), k) == param_names.end())
        param_names.push_back(k);

  if (format == "json") {
    auto out = nlohmann::ordered_json::array();
    for (const auto& t : trials) {
      nlohmann::ordered_json j;
      j["id"] = t.id;
      j["status"] = trial_status_name(t.status);
      j["metric"] = metric;
      j["best_value"] = t.best_value ? nlohmann::ordered_json(*t.best_value) : nullptr;
      j["best_step"] = t.best_step ? nlohmann::ordered_json(*t.best_step) : nullptr;
      j["last_step"] = t.last_step ? nlohmann::ordered_json(*t.last_step) : nullptr;
      j["params"] = t.params;
      j["attempts"] = t.attempts;
      j["seconds"] = t.started_at && t.finished_at
                         ? nlohmann::ordered_json(*t.finished_at - *t.started_at)
                         : nullptr;
      j["reason"] = t.reason;
      out.push_back(std::move(j));
    }
    std::cout << out.dump(2) << '\n';
    return kExitOk;
  }

  std::vector<std::string> header{"rank", "trial", "status", metric.empty() ? "value" : metric,
                                  "step"};
  header.insert(header.end(), param_names.begin(), param_names.end());
  header.insert(header.end(), {"attempts", "seconds", "reason"});
  std::vector<std::vector<std::string>> rows;
  int rank = 0;
  for (const auto& t : trials) {
    std::vector<std::string> row{t.best_value ? std::to_string(++rank) : "-", std::to_string(t.id),
                                 std::string(trial_status_name(t.status)),
                                 t.best_value ? number(*t.best_value) : "",
                                 t.best_step ? std::to_string(*t.best_step) : ""};
    for (const auto& p : param_names) {
      auto it = t.params.find(p);
      row.push_back(it == t.params.end() ? "" : format_arg_value(*it));
    }
    row.push_back(std::to_string(t.attempts));
    row.push_back(t.started_at && t.finished_at ? number(*t.finished_at - *t.started_at) : "");
    std::string reason = t.reason;
    if (format == "table" && reason.size() > 60) reason = reason.substr(0, 57) + "...";
    row.push_back(reason);
    rows.push_back(std::move(row));
  }
  if (format == "csv") {
    for (std::size_t i = 0; i < header.size(); ++i)
      std::cout << (i ? "," : "") << csv_cell(header[i]);
    std::cout << '\n';
    for (const auto& row : rows) {
      for (std::size_t i = 0; i < row.size(); ++i) std::cout << (i ? "," : "") << csv_cell(row[i]);
      std::cout << '\n';
    }
    return kExitOk;
  }
  std::vector<std::size_t> width(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      std::string cell = row[i];
      if (i + 1 < row.size()) cell.resize(width[i], ' ');
      line += (i ? "  " : "") + cell;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << '\n';
  };
  if (sweep)
    std::cout << "sweep " << (sweep->name.empty() ? sweep->config_path : sweep->name) << " ("
              << sweep->config_path << "), " << (metric.empty() ? "no metric" : metric) << " "
              << (maximize ? "maximize" : "minimize") << ", " << sweep->planned << " trials\n";
  print_row(header);
  for (const auto& row : rows) print_row(row);
  return kExitOk;
}

int export_command(const std::vector<std::string>& args) {
  bool with_metrics = false;
  po::options_description desc(kExportUsage);
  desc.add_options()("help,h", "show this help")("metrics", po::bool_switch(&with_metrics),
                                                 "include every reported metric row");
  po::variables_map vm;
  const std::string out_dir = parse_command_line(args, desc, "out_dir", vm);
  if (vm.count("help")) {
    std::cout << desc;
    return kExitOk;
  }
  if (out_dir.empty()) throw UserError("export: missing OUT_DIR; see --help");
  const auto stores = open_stores(out_dir);
  if (stores.size() == 1) {
    stores[0]->export_jsonl(std::cout, with_metrics);
    return kExitOk;
  }
  // A job array: one sweep line (planned summed), then every store's trial
  // lines in trial order.
  std::vector<std::pair<std::uint64_t, std::string>> lines;
  std::optional<std::string> sweep_line;
  for (const auto& s : stores) {
    std::ostringstream text;
    s->export_jsonl(text, with_metrics);
    std::istringstream in(text.str());
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::ordered_json::parse(line);
      if (j.value("kind", "") == "sweep") {
        if (!sweep_line) {
          j["planned"] = merged_sweep(stores)->planned;
          sweep_line = j.dump();
        }
        continue;
      }
      lines.emplace_back(j.at("id").get<std::uint64_t>(), std::move(line));
    }
  }
  std::stable_sort(lines.begin(), lines.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  if (sweep_line) std::cout << *sweep_line << '\n';
  for (const auto& [id, line] : lines) std::cout << line << '\n';
  return kExitOk;
}

}  // namespace xpscale::cli
