// AzureOptions from the environment, the way the Azure CLI reads it.
#include <cctype>
#include <cstdlib>
#include <map>

#include "shared_key.h"
#include "xpscale/sharding/azure.h"
#include "xpscale/sharding/error.h"

namespace xpscale {

namespace {

// Azurite's well-known development account (published in Azure's docs).
constexpr const char* kDevAccount = "devstoreaccount1";
constexpr const char* kDevKey =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
constexpr const char* kDevEndpoint = "http://127.0.0.1:10000/devstoreaccount1";

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trimmed(std::string_view s) {
  const std::size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string_view::npos) return "";
  const std::size_t b = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(a, b - a + 1));
}

// "Name=Value;..." with names lower-cased; values keep their '=' (keys end
// in "==").
std::map<std::string, std::string> parse_connection_string(const std::string& text) {
  std::map<std::string, std::string> out;
  std::size_t at = 0;
  int index = 0;
  while (at <= text.size()) {
    const std::size_t semi = std::min(text.find(';', at), text.size());
    const std::string element = trimmed(std::string_view(text).substr(at, semi - at));
    at = semi + 1;
    ++index;
    if (element.empty()) continue;
    const std::size_t eq = element.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw ShardingError("AZURE_STORAGE_CONNECTION_STRING: element " + std::to_string(index) +
                          " is not Name=Value (its text is not shown)");
    }
    out[lower(trimmed(element.substr(0, eq)))] = trimmed(element.substr(eq + 1));
  }
  return out;
}

void check_key(const std::string& key, const char* where) {
  if (!key.empty() && !detail::is_base64(key)) {
    throw ShardingError(std::string(where) +
                        ": the account key is not valid base64 (its value "
                        "is not shown)");
  }
}

void check_endpoint(std::string& endpoint, const char* where) {
  while (endpoint.ends_with('/')) endpoint.pop_back();
  const std::string l = lower(endpoint);
  const bool http = l.starts_with("http://") || l.starts_with("https://");
  const std::size_t host = endpoint.find("://");
  if (!http || host + 3 >= endpoint.size() || endpoint.find_first_of("?#@") != std::string::npos) {
    throw ShardingError(std::string(where) +
                        ": BlobEndpoint must be an http(s) URL without query or credentials, "
                        "e.g. http://127.0.0.1:10000/devstoreaccount1");
  }
}

std::string without_question_mark(std::string sas) {
  if (sas.starts_with('?')) sas.erase(0, 1);
  return sas;
}

}  // namespace

AzureOptions azure_options_from_env() {
  AzureOptions o;
  const std::string connection = env("AZURE_STORAGE_CONNECTION_STRING");
  if (!connection.empty()) {
    constexpr const char* kWhere = "AZURE_STORAGE_CONNECTION_STRING";
    auto cs = parse_connection_string(connection);
    if (lower(cs["usedevelopmentstorage"]) == "true") {
      o.account = kDevAccount;
      o.account_key = kDevKey;
      o.endpoint = kDevEndpoint;
    }
    if (!cs["accountname"].empty()) o.account = cs["accountname"];
    if (!cs["accountkey"].empty()) o.account_key = cs["accountkey"];
    o.sas_token = without_question_mark(cs["sharedaccesssignature"]);
    if (!cs["blobendpoint"].empty()) {
      o.endpoint = cs["blobendpoint"];
      check_endpoint(o.endpoint, kWhere);
    } else if (!o.account.empty() && o.endpoint.empty()) {
      const std::string protocol =
          cs["defaultendpointsprotocol"].empty() ? "https" : lower(cs["defaultendpointsprotocol"]);
      const std::string suffix =
          cs["endpointsuffix"].empty() ? "core.windows.net" : cs["endpointsuffix"];
      o.endpoint = protocol + "://" + o.account + ".blob." + suffix;
      check_endpoint(o.endpoint, kWhere);
    }
    if (o.account.empty() && !o.account_key.empty()) {
      throw ShardingError(std::string(kWhere) + ": AccountKey without AccountName");
    }
    if (o.account.empty() && o.endpoint.empty()) {
      throw ShardingError(std::string(kWhere) +
                          ": names neither AccountName nor BlobEndpoint (nor "
                          "UseDevelopmentStorage=true)");
    }
    check_key(o.account_key, kWhere);
  } else {
    o.account = env("AZURE_STORAGE_ACCOUNT");
    o.account_key = env("AZURE_STORAGE_KEY");
    o.sas_token = without_question_mark(env("AZURE_STORAGE_SAS_TOKEN"));
    if (o.account.empty() && (!o.account_key.empty() || !o.sas_token.empty())) {
      throw ShardingError(
          std::string(o.account_key.empty() ? "AZURE_STORAGE_SAS_TOKEN" : "AZURE_STORAGE_KEY") +
          " is set without AZURE_STORAGE_ACCOUNT");
    }
    check_key(o.account_key, "AZURE_STORAGE_KEY");
  }
  if (!o.account_key.empty()) o.sas_token.clear();  // Shared Key wins
  // An account in the endpoint's path (Azurite's path style) names it when
  // nothing else does.
  if (o.account.empty() && !o.endpoint.empty()) {
    const std::size_t host = o.endpoint.find("://") + 3;
    const std::size_t slash = o.endpoint.find('/', host);
    if (slash != std::string::npos) {
      o.account = o.endpoint.substr(slash + 1, o.endpoint.find('/', slash + 1) - slash - 1);
    } else {
      const std::string h = o.endpoint.substr(host);
      if (h.find(".blob.") != std::string::npos) o.account = h.substr(0, h.find('.'));
    }
  }
  return o;
}

}  // namespace xpscale
