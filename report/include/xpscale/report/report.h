#pragma once
// The sweep's pictures: the data of the report page, read from the store,
// and the page itself, one self-contained HTML file.
//
// report_data() reads the stores of one out_dir (one, or one per task of a
// job array) through the Store interface and returns the JSON the page
// draws; its fields are documented in report/web/DATA.md. html_page() puts
// that JSON, the page's script and style and ECharts (compiled into the
// binary, report/web/package-lock.json pins it) into one file that opens
// from disk with no network.
//
// Both work on a sweep that is still running: a running attempt ends "now"
// on the timeline and its curve ends at its last report.
#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "xpscale/store/store.h"

namespace xpscale::report {

struct ReportOptions {
  std::string out_dir;  // shown on the page
  // Unix seconds the data is taken at (running attempts end here); 0: now.
  double now = 0;
  // The most points drawn per learning curve; with many trials fewer, so
  // that the page holds about kCurvePointBudget points in all (every trial
  // keeps its curve: first, last and best points are always kept).
  std::size_t points_per_curve = 100;
  bool live = false;  // set by the dashboard
  // Parameter importance is computed unless false (then add_importance()
  // may fill it in later), on this many threads (0: one per core).
  bool importance = true;
  int importance_threads = 0;
};

// About this many curve points in all: 10,000 trials keep 20 points each.
inline constexpr std::size_t kCurvePointBudget = 200'000;
// Every curve keeps at least this many points however many trials there are.
inline constexpr std::size_t kMinPointsPerCurve = 10;

// The page's data (report/web/DATA.md). Throws StoreError when a store
// cannot be read.
nlohmann::json report_data(const std::vector<const Store*>& stores, const ReportOptions& options);

// Fills data["importance"] and data["importance_note"] from data's trials
// (their flat params and best values; failed trials left out): fANOVA,
// importance.h. report_data() calls it unless options.importance is false.
void add_importance(nlohmann::json& data, int threads = 0);

// `j` as JSON that can sit inside <script type="application/json">: '<',
// '>', '&', U+2028 and U+2029 are written as \u escapes, so no value can
// end the element or start a comment; invalid UTF-8 (a trial's stderr may
// hold any bytes) is replaced with U+FFFD.
std::string script_safe_json(const nlohmann::json& j);

// The whole page: the template report/web/report.html with its style,
// the data, ECharts and the page's script inlined.
std::string html_page(const nlohmann::json& data);

}  // namespace xpscale::report
