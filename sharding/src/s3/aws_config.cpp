// s3_options_from_env: credentials, region and endpoint found the way the
// AWS CLI and boto3 find them (see s3.h for the order); gcs_options_from_env
// the way gsutil finds HMAC keys.
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <string>

#include "gcs_oauth.h"
#include "xpscale/sharding/error.h"
#include "xpscale/sharding/s3.h"
#include "xpscale/sharding/url.h"

namespace xpscale {

namespace {

// section -> key -> value; a nested block ("s3 =" then indented lines) is
// stored as "s3.key".
using Ini = std::map<std::string, std::map<std::string, std::string>>;

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.remove_suffix(1);
  return std::string(s);
}

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

// The AWS shared-file dialect of INI, by hand: Boost.PropertyTree's INI
// reader rejects its nested blocks and repeated keys in them, and no other
// packaged parser knows the "[profile NAME]" convention. Errors name the
// file and line, never the line's text (it may hold a secret).
Ini read_ini(const std::string& path) {
  Ini ini;
  std::ifstream in(path);
  if (!in) return ini;  // a missing file is no error: the AWS tools skip it too
  std::string line;
  std::string section;
  std::string nested;  // the key of the open nested block, if any
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    const bool indented = std::isspace(static_cast<unsigned char>(line[0])) != 0;
    if (t.front() == '[') {
      if (t.back() != ']') {
        throw ShardingError(path + ":" + std::to_string(number) + ": unterminated section header");
      }
      section = trim(std::string_view(t).substr(1, t.size() - 2));
      nested.clear();
      continue;
    }
    // "key = value" or "key: value", as Python's configparser reads them
    // (botocore's and boto's parser): split at the first of the two.
    const std::size_t eq = t.find_first_of("=:");
    if (eq == std::string::npos || section.empty()) {
      throw ShardingError(path + ":" + std::to_string(number) +
                          ": expected \"[section]\" or \"key = value\" inside a section");
    }
    const std::string key = trim(std::string_view(t).substr(0, eq));
    const std::string value = trim(std::string_view(t).substr(eq + 1));
    if (indented && !nested.empty()) {
      ini[section][nested + "." + key] = value;
    } else {
      ini[section][key] = value;
      nested = value.empty() ? key : "";
    }
  }
  return ini;
}

// $env_name, else $HOME/relative.
std::string home_file(const char* env_name, const char* relative) {
  if (auto v = env(env_name)) return *v;
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "") + "/" + relative;
}

const std::map<std::string, std::string>* find(const Ini& ini, const std::string& section) {
  const auto it = ini.find(section);
  return it == ini.end() ? nullptr : &it->second;
}

std::string get(const std::map<std::string, std::string>* s, const std::string& key) {
  if (s == nullptr) return "";
  const auto it = s->find(key);
  return it == s->end() ? "" : it->second;
}

void check_pair(const AwsCredentials& c, const std::string& where) {
  if (c.access_key_id.empty() != c.secret_access_key.empty()) {
    throw ShardingError(where + ": " +
                        (c.access_key_id.empty() ? "a secret access key without an access key id"
                                                 : "an access key id without a secret access key"));
  }
}

AwsCredentials credentials_of(const std::map<std::string, std::string>* s) {
  return {get(s, "aws_access_key_id"), get(s, "aws_secret_access_key"),
          get(s, "aws_session_token")};
}

void check_endpoint(const std::string& endpoint, const std::string& where) {
  Url url;
  try {
    url = parse_url(endpoint);
  } catch (const ShardingError& e) {
    throw ShardingError(where + ": " + e.what());
  }
  if (url.scheme != "http" && url.scheme != "https") {
    throw ShardingError(where + ": the endpoint \"" + endpoint + "\" is not an http(s) URL");
  }
}

}  // namespace

S3Options s3_options_from_env() {
  S3Options options;
  const std::optional<std::string> named_profile = env("AWS_PROFILE");
  const std::string profile = named_profile.value_or("default");
  const std::string credentials_path = home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
  const std::string config_path = home_file("AWS_CONFIG_FILE", ".aws/config");
  const Ini credentials_file = read_ini(credentials_path);
  const Ini config_file = read_ini(config_path);
  const auto* cred_section = find(credentials_file, profile);
  const auto* config_section =
      find(config_file, profile == "default" ? "default" : "profile " + profile);
  if (config_section == nullptr) config_section = find(config_file, "profile " + profile);
  if (named_profile && cred_section == nullptr && config_section == nullptr) {
    throw ShardingError("AWS_PROFILE: the profile \"" + profile + "\" is in neither " +
                        credentials_path + " nor " + config_path);
  }

  if (env("AWS_ACCESS_KEY_ID") || env("AWS_SECRET_ACCESS_KEY")) {
    options.credentials = {env("AWS_ACCESS_KEY_ID").value_or(""),
                           env("AWS_SECRET_ACCESS_KEY").value_or(""),
                           env("AWS_SESSION_TOKEN").value_or("")};
    check_pair(options.credentials, "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
  } else if (!get(cred_section, "aws_access_key_id").empty() ||
             !get(cred_section, "aws_secret_access_key").empty()) {
    options.credentials = credentials_of(cred_section);
    check_pair(options.credentials, credentials_path + " [" + profile + "]");
  } else {
    options.credentials = credentials_of(config_section);
    check_pair(options.credentials, config_path + " [profile " + profile + "]");
  }

  if (auto r = env("AWS_REGION").has_value() ? env("AWS_REGION") : env("AWS_DEFAULT_REGION")) {
    options.region = *r;
  } else if (const std::string r2 = get(config_section, "region"); !r2.empty()) {
    options.region = r2;
  }

  std::string where = "AWS_ENDPOINT_URL_S3";
  std::optional<std::string> endpoint = env("AWS_ENDPOINT_URL_S3");
  if (!endpoint) endpoint = env("AWS_ENDPOINT_URL"), where = "AWS_ENDPOINT_URL";
  for (const char* key : {"s3.endpoint_url", "endpoint_url"}) {
    if (!endpoint && !get(config_section, key).empty()) {
      endpoint = get(config_section, key);
      where = config_path + " [profile " + profile + "] " + key;
    }
  }
  if (endpoint) {
    check_endpoint(*endpoint, where);
    while (endpoint->ends_with('/')) endpoint->pop_back();
    options.endpoint = *endpoint;
    options.path_style = true;
  }
  return options;
}

S3Options gcs_options_from_env() {
  S3Options options;
  options.url_scheme = "gs";
  options.region = "auto";  // what GCS expects in a SigV4 credential scope
  options.endpoint = "https://storage.googleapis.com";
  options.path_style = true;  // bucket names with dots break virtual hosts' TLS names

  if (env("GOOGLE_ACCESS_KEY_ID") || env("GOOGLE_SECRET_ACCESS_KEY")) {
    options.credentials = {env("GOOGLE_ACCESS_KEY_ID").value_or(""),
                           env("GOOGLE_SECRET_ACCESS_KEY").value_or(""), ""};
    check_pair(options.credentials, "GOOGLE_ACCESS_KEY_ID/GOOGLE_SECRET_ACCESS_KEY");
  } else {
    const std::string boto_path = home_file("BOTO_CONFIG", ".boto");
    const Ini boto = read_ini(boto_path);  // outlives `section`, which points into it
    const auto* section = find(boto, "Credentials");
    options.credentials = {get(section, "gs_access_key_id"), get(section, "gs_secret_access_key"),
                           ""};
    check_pair(options.credentials, boto_path + " [Credentials]");
  }
  if (options.credentials.empty()) {
    if (const auto key_file = env("GOOGLE_APPLICATION_CREDENTIALS")) {
      options.bearer_token = detail::gcs_service_account_tokens(*key_file);
    }
  }

  if (std::optional<std::string> endpoint = env("GCS_ENDPOINT_URL")) {
    check_endpoint(*endpoint, "GCS_ENDPOINT_URL");
    while (endpoint->ends_with('/')) endpoint->pop_back();
    options.endpoint = *endpoint;
  }
  return options;
}

}  // namespace xpscale
