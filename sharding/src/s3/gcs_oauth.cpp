#include "gcs_oauth.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "curl_transfer.h"
#include "retry_runner.h"
#include "xpscale/sharding/error.h"
#include "xpscale/sharding/sigv4.h"

namespace xpscale::detail {

namespace {

constexpr const char* kScope = "https://www.googleapis.com/auth/devstorage.read_write";
constexpr long long kLifetime = 3600;  // the longest Google grants
constexpr long long kRenewBefore = 300;

std::string base64url(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

std::string rs256(const std::string& pem, const std::string& data) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), int(pem.size())),
                                                BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr, EVP_PKEY_free);
  if (!key) throw ShardingError("its private_key is not a PEM private key");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t size = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &size, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) != 1) {
    throw ShardingError("its private_key cannot sign RS256");
  }
  std::string sig(size, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &size,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    throw ShardingError("its private_key cannot sign RS256");
  }
  sig.resize(size);
  return sig;
}

// A string field of a JSON object; `fallback` when absent or not a string
// (nlohmann's value() throws on a wrong type).
std::string text_of(const nlohmann::json& object, const char* name, const std::string& fallback) {
  const auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>() : fallback;
}

// application/x-www-form-urlencoded value.
std::string form_encode(std::string_view v) { return uri_encode(v, false); }

class ServiceAccountTokens {
 public:
  explicit ServiceAccountTokens(const std::string& path) : path_(path) {
    std::ifstream in(path);
    if (!in) throw ShardingError(path + " (GOOGLE_APPLICATION_CREDENTIALS): cannot be read");
    std::stringstream text;
    text << in.rdbuf();
    const nlohmann::json key = nlohmann::json::parse(text.str(), nullptr, false);
    if (!key.is_object()) {
      throw ShardingError(path + " (GOOGLE_APPLICATION_CREDENTIALS): not a JSON key file");
    }
    const std::string type = text_of(key, "type", "");
    if (type != "service_account") {
      throw ShardingError(path + " (GOOGLE_APPLICATION_CREDENTIALS): a key of type \"" + type +
                          "\"; xpscale reads service-account keys (type \"service_account\") "
                          "or HMAC keys (GOOGLE_ACCESS_KEY_ID and GOOGLE_SECRET_ACCESS_KEY)");
    }
    email_ = text_of(key, "client_email", "");
    pem_ = text_of(key, "private_key", "");
    for (const auto& [field, value] :
         {std::pair{"client_email", &email_}, {"private_key", &pem_}}) {
      if (value->empty())
        throw ShardingError(path + " (GOOGLE_APPLICATION_CREDENTIALS): no \"" + field + "\"");
    }
    key_id_ = text_of(key, "private_key_id", "");
    token_uri_ = text_of(key, "token_uri", "https://oauth2.googleapis.com/token");
    try {
      gcs_jwt_assertion(email_, pem_, key_id_, token_uri_, 0);  // the key signs: fail early
    } catch (const ShardingError& e) {
      throw ShardingError(path + " (GOOGLE_APPLICATION_CREDENTIALS): " + e.what());
    }
  }

  std::string token() {
    std::lock_guard lock(mutex_);
    const long long now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    if (!token_.empty() && now < expires_ - kRenewBefore) return token_;
    const std::string body =
        "grant_type=" + form_encode("urn:ietf:params:oauth:grant-type:jwt-bearer") +
        "&assertion=" + gcs_jwt_assertion(email_, pem_, key_id_, token_uri_, now);
    const std::string what = "POST " + token_uri_ + " (the token of " + email_ + ")";
    const auto t = perform(
        share_, RetryPolicy{},
        [&] {
          Request r;
          r.method = "POST";
          r.url = token_uri_;
          r.headers = {"Content-Type: application/x-www-form-urlencoded"};
          r.body = body;
          return r;
        },
        what);
    if (t->result() != CURLE_OK) throw_http_error(*t, what);
    const nlohmann::json answer = nlohmann::json::parse(t->body(), nullptr, false);
    if (t->status() != 200 || !answer.is_object() || !answer.contains("access_token") ||
        !answer["access_token"].is_string()) {
      // The error body of an OAuth server names the problem, never a secret
      // of ours ("invalid_grant", "Invalid JWT Signature.").
      std::string reason = answer.is_object() ? text_of(answer, "error", "") : "";
      if (answer.is_object() && answer.contains("error_description"))
        reason += ": " + text_of(answer, "error_description", "");
      throw ShardingError(what + ": HTTP " + std::to_string(t->status()) +
                          (reason.empty() ? "" : " " + reason) + "; check " + path_);
    }
    token_ = answer["access_token"];
    const auto lifetime = answer.find("expires_in");
    expires_ = now + (lifetime != answer.end() && lifetime->is_number()
                          ? static_cast<long long>(lifetime->get<double>())
                          : kLifetime);
    return token_;
  }

 private:
  std::string path_, email_, pem_, key_id_, token_uri_;
  CurlShare share_;
  std::mutex mutex_;
  std::string token_;
  long long expires_ = 0;
};

}  // namespace

std::string gcs_jwt_assertion(const std::string& client_email, const std::string& private_key_pem,
                              const std::string& private_key_id, const std::string& token_uri,
                              long long now) {
  nlohmann::json header = {{"alg", "RS256"}, {"typ", "JWT"}};
  if (!private_key_id.empty()) header["kid"] = private_key_id;
  const nlohmann::json claims = {{"iss", client_email},
                                 {"scope", kScope},
                                 {"aud", token_uri},
                                 {"iat", now},
                                 {"exp", now + kLifetime}};
  const std::string signing_input = base64url(header.dump()) + "." + base64url(claims.dump());
  return signing_input + "." + base64url(rs256(private_key_pem, signing_input));
}

std::function<std::string()> gcs_service_account_tokens(const std::string& path) {
  auto tokens = std::make_shared<ServiceAccountTokens>(path);
  return [tokens] { return tokens->token(); };
}

}  // namespace xpscale::detail
