// The Source for s3:// (and gs://) URLs: SigV4-signed requests (sigv4.h) over the
// libcurl layer, path-style for custom endpoints, virtual-hosted on AWS.
#include <algorithm>
#include <memory>
#include <mutex>

#include "curl_transfer.h"
#include "ranged_read.h"
#include "retry_runner.h"
#include "s3_xml.h"
#include "xpscale/sharding/error.h"
#include "xpscale/sharding/s3.h"

namespace xpscale {

namespace {

using detail::CurlShare;
using detail::Request;
using detail::Transfer;

const std::string kEmptySha256 = sha256_hex("");
constexpr std::uint64_t kMinPartSize = std::uint64_t{5} << 20;  // S3's multipart minimum

class S3Source : public Source {
 public:
  explicit S3Source(S3Options options) : options_(std::move(options)) {
    if (!options_.endpoint.empty()) {
      const Url endpoint = parse_url(options_.endpoint);
      scheme_ = endpoint.scheme;
      endpoint_host_ = endpoint.bucket_or_host;
    }
  }

  ObjectInfo stat(const Url& url) override {
    const std::string name = checked_name(url);
    const auto t =
        perform("HEAD " + name, [&] { return build("HEAD", url.bucket_or_host, url.path); });
    if (t->result() != CURLE_OK || t->status() != 200) detail::throw_http_error(*t, name);
    return {name, content_length(*t, name), t->header("etag")};
  }

  std::vector<ObjectInfo> list(const Url& prefix) override {
    const std::string name = checked_name(prefix);
    std::vector<ObjectInfo> out;
    std::string token;
    do {
      HeaderList query{{"list-type", "2"},
                       {"prefix", prefix.path},
                       {"max-keys", std::to_string(options_.list_page_size)}};
      if (!token.empty()) query.emplace_back("continuation-token", token);
      const auto t =
          perform("LIST " + name, [&] { return build("GET", prefix.bucket_or_host, "", query); });
      if (t->result() != CURLE_OK || t->status() != 200) detail::throw_http_error(*t, name);
      detail::ListPage page = detail::parse_list_page(t->body(), name);
      for (detail::ListedObject& o : page.objects) {
        out.push_back(
            {to_string(Url{options_.url_scheme, prefix.bucket_or_host, o.key}), o.size, o.etag});
      }
      token = page.truncated ? page.next_token : "";
    } while (!token.empty());
    std::sort(out.begin(), out.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.url < b.url; });
    return out;
  }

  void read(const ObjectInfo& object, std::uint64_t offset, std::uint64_t length,
            const ByteSink& sink) override {
    const Url url = parse_url(object.url);
    checked_name(url);
    // Without an ETag the object may have been described by hand: ask S3
    // for its size and ETag so that every part can be pinned to them.
    const ObjectInfo info = object.etag.empty() ? stat(url) : object;
    const std::uint64_t end = detail::range_end(info, offset, length);
    if (end == offset) return;
    detail::read_ranges(
        share_, budget_, options_.transfer, info.url, info.etag, offset, end,
        [&](std::uint64_t first, std::uint64_t last) {
          HeaderList headers;
          const std::string range = detail::range_value(first, last, info.size);
          if (!range.empty()) headers.emplace_back("Range", range);
          if (!info.etag.empty()) headers.emplace_back("If-Match", info.etag);
          return build("GET", url.bucket_or_host, url.path, {}, headers);
        },
        sink);
  }

  void put(const Url& url, std::string_view bytes) override {
    const std::string name = checked_name(url);
    if (url.path.empty() || url.path.ends_with('/')) {
      throw ShardingError(name + ": put needs an object key, not a bucket or prefix");
    }
    if (bytes.size() > options_.multipart_threshold) {
      put_multipart(url, name, bytes);
      return;
    }
    const std::string sha = sha256_hex(bytes);
    const auto t = perform("PUT " + name, [&] {
      return build("PUT", url.bucket_or_host, url.path, {}, {}, bytes, sha);
    });
    if (t->result() != CURLE_OK || t->status() / 100 != 2) detail::throw_http_error(*t, name);
  }

 private:
  class UploadPartJob;

  std::string checked_name(const Url& url) const {
    if (url.scheme != options_.url_scheme) {
      throw ShardingError(to_string(url) + ": this source reads only " + options_.url_scheme +
                          ":// URLs");
    }
    return to_string(url);
  }

  static std::uint64_t content_length(const Transfer& t, const std::string& name) {
    const std::string v = t.header("content-length");
    try {
      std::size_t used = 0;
      const std::uint64_t n = std::stoull(v, &used);
      if (used == v.size()) return n;
    } catch (const std::exception&) {
    }
    throw ShardingError(name + ": HEAD answered without a valid Content-Length");
  }

  std::unique_ptr<Transfer> perform(const std::string& what, const std::function<Request()>& b) {
    return detail::perform(share_, options_.transfer.retry, b, what);
  }

  // A signed request (unsigned without credentials) for bucket/key; query
  // and headers unencoded, the body's SHA-256 precomputed for big bodies.
  Request build(const std::string& method, const std::string& bucket, const std::string& key,
                const HeaderList& query = {}, const HeaderList& headers = {},
                std::string_view body = {}, const std::string& body_sha = "") const {
    SigV4Request r;
    r.method = method;
    if (options_.path_style) {
      r.host = endpoint_host_;
      r.encoded_path =
          "/" + uri_encode(bucket, false) + (key.empty() ? "" : "/" + uri_encode(key, true));
    } else {
      r.host = bucket + ".s3." + options_.region + ".amazonaws.com";
      r.encoded_path = "/" + uri_encode(key, true);
    }
    r.query = query;
    r.headers = headers;
    r.payload_sha256 = body.empty() ? kEmptySha256 : body_sha;
    Request out;
    out.method = method;
    out.body = body;
    const std::string qs = canonical_query_string(query);
    out.url = scheme_ + "://" + r.host + r.encoded_path + (qs.empty() ? "" : "?" + qs);
    for (const auto& [n, v] : headers) out.headers.push_back(n + ": " + v);
    if (!options_.credentials.empty()) {
      const SigV4Signature sig = sign_v4(r, options_.credentials, options_.region, "s3",
                                         amz_date(std::chrono::system_clock::now()));
      for (const auto& [n, v] : sig.headers) out.headers.push_back(n + ": " + v);
    } else if (options_.bearer_token) {
      out.headers.push_back("Authorization: Bearer " + options_.bearer_token());
    }
    return out;
  }

  void put_multipart(const Url& url, const std::string& name, std::string_view bytes);

  S3Options options_;
  std::string scheme_ = "https";
  std::string endpoint_host_;
  CurlShare share_;
  detail::ReadBudget budget_;
};

// One part of a multipart upload: PUT ?partNumber=N&uploadId=U.
class S3Source::UploadPartJob : public detail::Job {
 public:
  UploadPartJob(const S3Source& source, const Url& url, const std::string& upload_id, int number,
                std::string_view bytes)
      : source_(source),
        url_(url),
        upload_id_(upload_id),
        number_(number),
        bytes_(bytes),
        sha_(sha256_hex(bytes)) {}

  std::unique_ptr<Transfer> start(const CurlShare& share, const RetryPolicy& policy) override {
    const HeaderList query{{"partNumber", std::to_string(number_)}, {"uploadId", upload_id_}};
    return std::make_unique<Transfer>(
        share, source_.build("PUT", url_.bucket_or_host, url_.path, query, {}, bytes_, sha_),
        policy);
  }
  std::string finish() override {
    const std::string fault = detail::transient_fault(*transfer);
    if (!fault.empty()) return fault;
    if (transfer->result() != CURLE_OK || transfer->status() / 100 != 2) {
      detail::throw_http_error(*transfer, what());
    }
    etag = transfer->header("etag");
    if (etag.empty()) throw ShardingError(what() + ": the answer carries no ETag");
    return "";
  }
  std::string what() const override {
    return "PUT " + to_string(url_) + " part " + std::to_string(number_);
  }
  std::string etag;

 private:
  const S3Source& source_;
  const Url& url_;
  const std::string& upload_id_;
  int number_;
  std::string_view bytes_;
  std::string sha_;
};

void S3Source::put_multipart(const Url& url, const std::string& name, std::string_view bytes) {
  const std::string& bucket = url.bucket_or_host;
  const auto init = perform("POST " + name + " (start multipart upload)", [&] {
    return build("POST", bucket, url.path, {{"uploads", ""}});
  });
  if (init->result() != CURLE_OK || init->status() != 200) detail::throw_http_error(*init, name);
  const std::string upload_id = detail::parse_upload_id(init->body(), name);
  try {
    const std::uint64_t part = std::max(options_.transfer.part_size, kMinPartSize);
    std::vector<std::unique_ptr<UploadPartJob>> parts;
    std::vector<detail::Job*> jobs;
    for (std::uint64_t at = 0; at < bytes.size(); at += part) {
      parts.push_back(std::make_unique<UploadPartJob>(
          *this, url, upload_id, static_cast<int>(parts.size() + 1), bytes.substr(at, part)));
      jobs.push_back(parts.back().get());
    }
    detail::run_jobs(jobs, options_.transfer.max_parallel, options_.transfer.max_parallel, share_,
                     options_.transfer.retry, [](std::size_t) { return true; });
    std::vector<std::string> etags;
    for (const auto& p : parts) etags.push_back(p->etag);
    const std::string xml = detail::complete_upload_xml(etags);
    const std::string sha = sha256_hex(xml);
    const auto done = perform("POST " + name + " (complete multipart upload)", [&] {
      return build("POST", bucket, url.path, {{"uploadId", upload_id}}, {}, xml, sha);
    });
    // S3 may answer 200 and still carry an <Error> in the body.
    if (done->result() != CURLE_OK || done->status() != 200 ||
        !detail::parse_s3_error(done->body()).code.empty()) {
      detail::throw_http_error(*done, name);
    }
  } catch (...) {
    // Leave no partial upload behind; a failure to abort is secondary to
    // the error being reported.
    try {
      perform("DELETE " + name + " (abort multipart upload)", [&] {
        return build("DELETE", bucket, url.path, {{"uploadId", upload_id}});
      });
    } catch (const std::exception&) {
    }
    throw;
  }
}

}  // namespace

std::shared_ptr<Source> make_s3_source(S3Options options) {
  return std::make_shared<S3Source>(std::move(options));
}

}  // namespace xpscale
