// The report page: the template with its style, data and scripts inlined.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "xpscale/report/report.h"

// The page's files, linked in by assets.S (report/CMakeLists.txt).
extern "C" {
extern const char xpscale_report_template_begin[], xpscale_report_template_end[];
extern const char xpscale_report_css_begin[], xpscale_report_css_end[];
extern const char xpscale_report_js_begin[], xpscale_report_js_end[];
extern const char xpscale_report_echarts_begin[], xpscale_report_echarts_end[];
}

namespace xpscale::report {
namespace {

std::string_view asset(const char* begin, const char* end) {
  return {begin, static_cast<std::size_t>(end - begin)};
}

}  // namespace

std::string script_safe_json(const nlohmann::json& j) {
  const std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size() + text.size() / 16);
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '<') {
      out += "\\u003c";
    } else if (c == '>') {
      out += "\\u003e";
    } else if (c == '&') {
      out += "\\u0026";
    } else if (c == '\xE2' && i + 2 < text.size() && text[i + 1] == '\x80' &&
               (text[i + 2] == '\xA8' || text[i + 2] == '\xA9')) {
      // U+2028 and U+2029 (only ever inside a string here: JSON has no
      // other place for them) end a line in older JavaScript.
      out += text[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

std::string html_page(const nlohmann::json& data) {
  const std::string json = script_safe_json(data);
  const std::pair<std::string_view, std::string_view> parts[] = {
      {"/*XPSCALE_CSS*/", asset(xpscale_report_css_begin, xpscale_report_css_end)},
      {"/*XPSCALE_DATA*/", json},
      {"/*XPSCALE_ECHARTS*/", asset(xpscale_report_echarts_begin, xpscale_report_echarts_end)},
      {"/*XPSCALE_JS*/", asset(xpscale_report_js_begin, xpscale_report_js_end)},
  };
  // Every marker is found in the template itself, in this order, before
  // anything is put in: nothing inside the data or a script is ever taken
  // for a marker.
  const std::string_view page = asset(xpscale_report_template_begin, xpscale_report_template_end);
  std::string out;
  std::size_t size = page.size();
  for (const auto& [marker, text] : parts) size += text.size();
  out.reserve(size);
  std::size_t from = 0;
  for (const auto& [marker, text] : parts) {
    const auto at = page.find(marker, from);
    // The template is ours: a missing marker is a build mistake.
    if (at == std::string_view::npos)
      throw std::logic_error("report.html lacks the marker " + std::string(marker) +
                             " (in this order: css, data, echarts, js)");
    out.append(page.substr(from, at - from)).append(text);
    from = at + marker.size();
  }
  out.append(page.substr(from));
  return out;
}

}  // namespace xpscale::report
