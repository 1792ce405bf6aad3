// The Source for http:// and https:// URLs: HEAD, ranged GETs and PUT on
// the same libcurl layer as S3, without signing.
#include <memory>

#include "curl_transfer.h"
#include "ranged_read.h"
#include "retry_runner.h"
#include "xpscale/sharding/error.h"
#include "xpscale/sharding/s3.h"

namespace xpscale {

namespace {

using detail::Request;

class HttpSource : public Source {
 public:
  explicit HttpSource(TransferOptions options) : options_(std::move(options)) {}

  ObjectInfo stat(const Url& url) override {
    const std::string name = checked_name(url);
    const auto t = detail::perform(
        share_, options_.retry,
        [&] {
          return Request{"HEAD", name, {}, {}};
        },
        "HEAD " + name);
    if (t->result() != CURLE_OK || t->status() != 200) detail::throw_http_error(*t, name);
    const std::string v = t->header("content-length");
    std::uint64_t size = 0;
    try {
      std::size_t used = 0;
      size = std::stoull(v, &used);
      if (used != v.size()) throw std::invalid_argument(v);
    } catch (const std::exception&) {
      throw ShardingError(name + ": HEAD answered without a valid Content-Length");
    }
    return {name, size, t->header("etag")};
  }

  std::vector<ObjectInfo> list(const Url& prefix) override {
    throw ShardingError(checked_name(prefix) +
                        ": http(s) has no listing; name the shards (a list or a brace pattern)");
  }

  void read(const ObjectInfo& object, std::uint64_t offset, std::uint64_t length,
            const ByteSink& sink) override {
    const Url url = parse_url(object.url);
    checked_name(url);
    // A hand-made ObjectInfo (no size, no ETag) is completed by a HEAD.
    const ObjectInfo info = object.size == 0 && object.etag.empty() ? stat(url) : object;
    const std::uint64_t end = detail::range_end(info, offset, length);
    if (end == offset) return;
    detail::read_ranges(
        share_, budget_, options_, info.url, info.etag, offset, end,
        [&](std::uint64_t first, std::uint64_t last) {
          Request r{"GET", info.url, {}, {}};
          const std::string range = detail::range_value(first, last, info.size);
          if (!range.empty()) r.headers.push_back("Range: " + range);
          if (!info.etag.empty()) r.headers.push_back("If-Match: " + info.etag);
          return r;
        },
        sink);
  }

  void put(const Url& url, std::string_view bytes) override {
    const std::string name = checked_name(url);
    const auto t = detail::perform(
        share_, options_.retry,
        [&] {
          return Request{"PUT", name, {}, bytes};
        },
        "PUT " + name);
    if (t->result() != CURLE_OK || t->status() / 100 != 2) detail::throw_http_error(*t, name);
  }

 private:
  static std::string checked_name(const Url& url) {
    if (url.scheme != "http" && url.scheme != "https") {
      throw ShardingError(to_string(url) + ": the HTTP source reads only http(s):// URLs");
    }
    return to_string(url);
  }

  TransferOptions options_;
  detail::CurlShare share_;
  detail::ReadBudget budget_;
};

}  // namespace

std::shared_ptr<Source> make_http_source(TransferOptions options) {
  return std::make_shared<HttpSource>(std::move(options));
}

}  // namespace xpscale
