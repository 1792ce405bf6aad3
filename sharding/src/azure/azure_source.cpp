// The Source for Azure Blob Storage: Shared Key or SAS requests
// (shared_key.h) over the libcurl layer, the ranged reads and the retries
// that the S3 Source uses (../s3).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <memory>

#include "azure_xml.h"
#include "s3/curl_transfer.h"
#include "s3/ranged_read.h"
#include "s3/retry_runner.h"
#include "s3/s3_xml.h"  // parse_s3_error: Azure's error bodies have its shape
#include "shared_key.h"
#include "xpscale/sharding/azure.h"
#include "xpscale/sharding/error.h"

namespace xpscale {

namespace {

using detail::CurlShare;
using detail::Request;
using detail::Transfer;

// The REST API version every request asks for (Azurite 3.37 accepts up to
// 2026-06-06; the features used here are all older).
constexpr const char* kApiVersion = "2025-11-05";
constexpr std::string_view kPublicSuffix = ".blob.core.windows.net";

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_public_host(std::string_view host) {
  const std::string h = lower(
      host.substr(0, host.rfind(':') == std::string_view::npos ? host.size() : host.rfind(':')));
  return h.size() > kPublicSuffix.size() && h.ends_with(kPublicSuffix);
}

// The endpoint's text when url lies under it ("" when it does not).
bool under_endpoint(const std::string& url, const std::string& endpoint) {
  return !endpoint.empty() && url.size() > endpoint.size() + 1 &&
         lower(url.substr(0, endpoint.size())) == lower(endpoint) && url[endpoint.size()] == '/';
}

// A URL resolved to the account, the endpoint and the container and blob.
struct Target {
  std::string name;  // the URL as the user wrote it (to_string), for messages
  std::string account;
  std::string base;  // "scheme://host[:port][/path]" under which containers live
  std::string container;
  std::string blob;  // decoded; "" for a whole container
  bool az = false;   // az:// (listings answer in that form)
};

std::uint64_t content_length(const Transfer& t, const std::string& name) {
  const std::string v = t.header("content-length");
  try {
    std::size_t used = 0;
    const std::uint64_t n = std::stoull(v, &used);
    if (used == v.size()) return n;
  } catch (const std::exception&) {
  }
  throw ShardingError(name + ": Get Blob Properties answered without a valid Content-Length");
}

class AzureSource : public Source {
 public:
  explicit AzureSource(AzureOptions options) : options_(std::move(options)) {}

  ObjectInfo stat(const Url& url) override {
    const Target t = resolve(url, true);
    const auto r = perform("HEAD " + t.name, [&] { return build("HEAD", t, t.blob); });
    if (r->result() != CURLE_OK || r->status() != 200) fail(*r, t);
    return {t.name, content_length(*r, t.name), r->header("etag")};
  }

  std::vector<ObjectInfo> list(const Url& prefix) override {
    const Target t = resolve(prefix, false);
    std::vector<ObjectInfo> out;
    std::string marker;
    do {
      HeaderList query{{"restype", "container"}, {"comp", "list"}};
      // An empty value is never sent: the SDKs leave such parameters out
      // of the string to sign, and so does sign_shared_key.
      if (!t.blob.empty()) query.emplace_back("prefix", t.blob);
      if (!marker.empty()) query.emplace_back("marker", marker);
      query.emplace_back("maxresults", std::to_string(options_.list_page_size));
      const auto r = perform("LIST " + t.name, [&] { return build("GET", t, "", query); });
      if (r->result() != CURLE_OK || r->status() != 200) fail(*r, t);
      detail::AzureListPage page = detail::parse_azure_list_page(r->body(), t.name);
      for (detail::AzureListedBlob& b : page.blobs) {
        out.push_back({url_of(t, b.name), b.size, std::move(b.etag)});
      }
      marker = std::move(page.next_marker);
    } while (!marker.empty());
    std::sort(out.begin(), out.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.url < b.url; });
    return out;
  }

  void read(const ObjectInfo& object, std::uint64_t offset, std::uint64_t length,
            const ByteSink& sink) override {
    const Url url = parse_url(object.url);
    const Target t = resolve(url, true);
    // Without an ETag the object may have been described by hand: ask for
    // its size and ETag so that every part is pinned to them (If-Match).
    const ObjectInfo info = object.etag.empty() ? stat(url) : object;
    const std::uint64_t end = detail::range_end(info, offset, length);
    if (end == offset) return;
    detail::read_ranges(
        share_, budget_, options_.transfer, info.url, info.etag, offset, end,
        [&](std::uint64_t first, std::uint64_t last) {
          HeaderList headers;
          const std::string range = detail::range_value(first, last, info.size);
          if (!range.empty()) headers.emplace_back("x-ms-range", range);
          if (!info.etag.empty()) headers.emplace_back("If-Match", info.etag);
          return build("GET", t, t.blob, {}, std::move(headers));
        },
        sink);
  }

  void put(const Url& url, std::string_view bytes) override {
    const Target t = resolve(url, true);
    if (t.blob.ends_with('/')) {
      throw ShardingError(t.name + ": put needs a blob name, not a prefix");
    }
    if (bytes.size() > options_.block_threshold) {
      put_blocks(t, bytes);
      return;
    }
    const auto r = perform("PUT " + t.name, [&] {
      return build("PUT", t, t.blob, {}, {{"x-ms-blob-type", "BlockBlob"}}, bytes);
    });
    if (r->result() != CURLE_OK || r->status() / 100 != 2) fail(*r, t);
  }

  // Shared with BlockJob.
  Request build(const std::string& method, const Target& t, const std::string& blob,
                const HeaderList& query = {}, HeaderList headers = {},
                std::string_view body = {}) const {
    std::string url = t.base + "/" + t.container;
    if (!blob.empty()) url += "/" + detail::azure_encode_path(blob);
    std::string qs = detail::azure_query_string(query);
    const bool key = signs(t);
    if (!key && authorises(t) && !options_.sas_token.empty()) {
      qs += (qs.empty() ? "" : "&") + options_.sas_token;
    }
    if (!qs.empty()) url += "?" + qs;
    headers.emplace_back("x-ms-date", detail::rfc1123_date(std::chrono::system_clock::now()));
    headers.emplace_back("x-ms-version", kApiVersion);
    Request out;
    out.method = method;
    out.body = body;
    for (const auto& [n, v] : headers) out.headers.push_back(n + ": " + v);
    if (key) {
      // curl sends Content-Length itself for PUT; it is signed, not added.
      HeaderList signed_headers = headers;
      if (method == "PUT" || method == "POST") {
        signed_headers.emplace_back("Content-Length", std::to_string(body.size()));
      }
      const detail::SharedKeySignature sig =
          detail::sign_shared_key({method, url, signed_headers}, t.account, options_.account_key);
      out.headers.push_back("Authorization: " + sig.authorization);
    }
    out.url = std::move(url);
    return out;
  }

  // An answer that is not what was asked, as ShardingError naming the URL
  // and the account (never a key or a SAS).
  [[noreturn]] void fail(const Transfer& r, const Target& t) const {
    if (r.result() != CURLE_OK) detail::throw_http_error(r, t.name);
    const detail::S3ErrorDoc doc = detail::parse_s3_error(r.body());
    std::string code = r.header("x-ms-error-code");
    if (code.empty()) code = doc.code;
    std::string message = doc.message.substr(0, doc.message.find('\n'));
    std::string detail = code.empty() ? "" : " " + code;
    if (!message.empty()) detail += ": " + message;
    const long status = r.status();
    std::string what;
    if (status == 404) {
      what = code == "ContainerNotFound" ? "no such container" : "no such blob";
      throw ObjectNotFound(redacted(t.name + ": " + what + " (HTTP 404" + detail + ")"));
    }
    if (status == 403 || status == 401) {
      what = "access denied (HTTP " + std::to_string(status) + detail + ") to storage account \"" +
             t.account + "\"; " + auth_hint(t);
    } else if (status == 412) {
      what =
          "the blob changed during the read: its ETag no longer matches (HTTP 412" + detail + ")";
    } else {
      what = r.request().method + " answered HTTP " + std::to_string(status) + detail;
    }
    throw ShardingError(redacted(t.name + ": " + what));
  }

  std::unique_ptr<Transfer> perform(const std::string& what, const std::function<Request()>& b) {
    return detail::perform(share_, options_.transfer.retry, b, what);
  }

  const AzureOptions& options() const { return options_; }
  CurlShare& share() { return share_; }

 private:
  Target resolve(const Url& url, bool need_blob) const {
    Target t;
    t.name = to_string(url);
    std::string rest;
    if (url.scheme == "az") {
      t.az = true;
      t.account = options_.account;
      t.base = options_.endpoint.empty() && !t.account.empty()
                   ? "https://" + t.account + std::string(kPublicSuffix)
                   : options_.endpoint;
      if (t.base.empty()) {
        throw ShardingError(t.name +
                            ": no storage account for az:// URLs; set AZURE_STORAGE_ACCOUNT (with "
                            "AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN) or "
                            "AZURE_STORAGE_CONNECTION_STRING");
      }
      t.container = url.bucket_or_host;
      t.blob = url.path;
    } else if (url.scheme == "http" || url.scheme == "https") {
      const std::size_t q = url.path.find_first_of("?#");
      if (q != std::string::npos) {
        t.name = to_string(Url{url.scheme, url.bucket_or_host, url.path.substr(0, q)});
        throw ShardingError(t.name +
                            ": Azure URLs take no query string (not shown); put a SAS token in "
                            "AZURE_STORAGE_SAS_TOKEN or AZURE_STORAGE_CONNECTION_STRING");
      }
      if (under_endpoint(t.name, options_.endpoint)) {
        t.base = options_.endpoint;
        t.account = options_.account;
        rest = t.name.substr(options_.endpoint.size() + 1);
      } else if (is_public_host(url.bucket_or_host)) {
        t.account = lower(url.bucket_or_host.substr(0, url.bucket_or_host.find('.')));
        t.base = url.scheme + "://" + url.bucket_or_host;
        rest = url.path.substr(1);
      } else {
        throw ShardingError(t.name +
                            ": not an Azure Blob URL (expected az://container/blob, "
                            "https://ACCOUNT.blob.core.windows.net/container/blob or a "
                            "URL under AZURE_STORAGE_CONNECTION_STRING's BlobEndpoint)");
      }
      const std::size_t slash = rest.find('/');
      t.container = rest.substr(0, slash);
      t.blob = slash == std::string::npos ? "" : detail::percent_decode(rest.substr(slash + 1));
    } else {
      throw ShardingError(t.name + ": the Azure source reads only az:// and Azure Blob URLs");
    }
    if (t.container.empty()) throw ShardingError(t.name + ": no container in the URL");
    if (need_blob && t.blob.empty()) {
      throw ShardingError(t.name + ": names a container, not a blob");
    }
    return t;
  }

  std::string url_of(const Target& t, const std::string& blob) const {
    if (t.az) return to_string(Url{"az", t.container, blob});
    return t.base + "/" + t.container + "/" + detail::azure_encode_path(blob);
  }

  // The configured credentials are for t's account.
  bool authorises(const Target& t) const {
    return !t.account.empty() && t.account == options_.account;
  }
  bool signs(const Target& t) const { return authorises(t) && !options_.account_key.empty(); }

  std::string auth_hint(const Target& t) const {
    if (signs(t)) {
      return "check the account key (AZURE_STORAGE_KEY, or AccountKey in "
             "AZURE_STORAGE_CONNECTION_STRING)";
    }
    if (authorises(t) && !options_.sas_token.empty()) {
      return "check the SAS token (AZURE_STORAGE_SAS_TOKEN or SharedAccessSignature in "
             "AZURE_STORAGE_CONNECTION_STRING): its permissions, resource and expiry";
    }
    return "the request went without credentials for this account; set AZURE_STORAGE_ACCOUNT "
           "with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN, or "
           "AZURE_STORAGE_CONNECTION_STRING";
  }

  // Defence in depth: a server that echoed a secret back still cannot
  // carry it into our messages.
  std::string redacted(std::string text) const {
    for (const std::string& secret : {options_.account_key, options_.sas_token}) {
      if (secret.size() < 8) continue;
      for (std::size_t at = text.find(secret); at != std::string::npos;
           at = text.find(secret, at)) {
        text.replace(at, secret.size(), "***");
      }
    }
    return text;
  }

  void put_blocks(const Target& t, std::string_view bytes);

  AzureOptions options_;
  CurlShare share_;
  detail::ReadBudget budget_;
};

// One block of a blob upload: PUT ?comp=block&blockid=ID.
class BlockJob : public detail::Job {
 public:
  BlockJob(const AzureSource& source, const Target& target, std::string id, std::string_view bytes,
           int number)
      : source_(source), target_(target), id_(std::move(id)), bytes_(bytes), number_(number) {}

  std::unique_ptr<Transfer> start(const CurlShare& share, const RetryPolicy& policy) override {
    return std::make_unique<Transfer>(
        share,
        source_.build("PUT", target_, target_.blob, {{"comp", "block"}, {"blockid", id_}}, {},
                      bytes_),
        policy);
  }
  std::string finish() override {
    const std::string fault = detail::transient_fault(*transfer);
    if (!fault.empty()) return fault;
    if (transfer->result() != CURLE_OK || transfer->status() / 100 != 2) {
      source_.fail(*transfer, target_);
    }
    return "";
  }
  std::string what() const override {
    return "PUT " + target_.name + " block " + std::to_string(number_);
  }

 private:
  const AzureSource& source_;
  const Target& target_;
  std::string id_;
  std::string_view bytes_;
  int number_;
};

void AzureSource::put_blocks(const Target& t, std::string_view bytes) {
  const std::uint64_t size = std::max<std::uint64_t>(options_.transfer.part_size, 1);
  std::vector<std::unique_ptr<BlockJob>> blocks;
  std::vector<detail::Job*> jobs;
  std::vector<std::string> ids;
  for (std::uint64_t at = 0; at < bytes.size(); at += size) {
    // Ids of one blob must have one length: base64 of a fixed-width number.
    char raw[16];
    std::snprintf(raw, sizeof raw, "%012zu", blocks.size());
    static constexpr char kB64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string id;
    for (int i = 0; i < 12; i += 3) {  // 12 bytes -> 16 characters, no padding
      const unsigned v = (static_cast<unsigned char>(raw[i]) << 16) |
                         (static_cast<unsigned char>(raw[i + 1]) << 8) |
                         static_cast<unsigned char>(raw[i + 2]);
      id += kB64[(v >> 18) & 63];
      id += kB64[(v >> 12) & 63];
      id += kB64[(v >> 6) & 63];
      id += kB64[v & 63];
    }
    ids.push_back(id);
    blocks.push_back(std::make_unique<BlockJob>(*this, t, id, bytes.substr(at, size),
                                                static_cast<int>(blocks.size() + 1)));
    jobs.push_back(blocks.back().get());
  }
  // Uncommitted blocks need no clean-up: Azure drops them after a week, and
  // a failed upload leaves the blob as it was.
  detail::run_jobs(jobs, options_.transfer.max_parallel, options_.transfer.max_parallel, share_,
                   options_.transfer.retry, [](std::size_t) { return true; });
  const std::string xml = detail::azure_block_list_xml(ids);
  const auto r = perform("PUT " + t.name + " (block list)", [&] {
    return build("PUT", t, t.blob, {{"comp", "blocklist"}}, {}, xml);
  });
  if (r->result() != CURLE_OK || r->status() / 100 != 2) fail(*r, t);
}

}  // namespace

std::shared_ptr<Source> make_azure_source(AzureOptions options) {
  return std::make_shared<AzureSource>(std::move(options));
}

bool is_azure_url(const Url& url) {
  if (url.scheme == "az") return true;
  if (url.scheme != "http" && url.scheme != "https") return false;
  if (is_public_host(url.bucket_or_host)) return true;
  if (std::getenv("AZURE_STORAGE_CONNECTION_STRING") == nullptr) return false;
  try {
    return under_endpoint(to_string(url), azure_options_from_env().endpoint);
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace xpscale
