#include "gcs_oauth.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>
#include <utility>

#include "curl_transfer.h"
#include "retry_runner.h"
#include "xpscale/sharding/error.h"
#include "xpscale/sharding/sigv4.h"

namespace xpscale::detail {

namespace {

constexpr const char* kScope = "https://www.googleapis.com/auth/devstorage.read_write";
constexpr long long kLifetime = 3600;  // the longest Google grants
// Renewal this long before expiry, or halfway through a shorter life.
constexpr std::chrono::seconds kRenewBefore{300};

// The token exchange retries a shorter while than a read: every request
// of the process waits on it, and a token server that is down for long
// is better reported than waited for.
RetryPolicy exchange_policy() {
  RetryPolicy p;
  p.max_attempts = 5;
  p.max_total = std::chrono::seconds(30);
  p.stall_timeout = std::chrono::seconds(15);
  p.attempt_timeout = std::chrono::seconds(20);  // a trickling server too
  return p;
}

// A passphrase callback that has none: an encrypted key is an error,
// never a prompt on the terminal (OpenSSL's default callback). -1, not 0:
// OpenSSL 3 reads 0 as the empty passphrase.
int no_passphrase(char*, int, int, void*) { return -1; }

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
      bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr) : nullptr,
      EVP_PKEY_free);
  ERR_clear_error();  // a failed parse leaves its reasons queued for this thread
  if (!key) throw ShardingError("its private_key is not an unencrypted PEM private key");
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) {
    throw ShardingError("its private_key is not an RSA key (RS256 needs one)");
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t size = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &size, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) != 1) {
    ERR_clear_error();
    throw ShardingError("its private_key cannot sign RS256");
  }
  std::string sig(size, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &size,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    ERR_clear_error();
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

  // A token valid for a while yet. Renewal is one exchange at a time:
  // meanwhile the other requests go on with the current token while it is
  // valid, and those that cannot (no token yet, or about to expire) wait
  // for that exchange and share its outcome instead of making their own.
  // After a failed exchange the current token serves, and new exchanges
  // wait kRetryAfter; without a valid token the failure is the answer.
  std::string token() {
    std::uint64_t seen = 0;
    {
      std::lock_guard lock(state_);
      const auto now = Steady::now();
      if (usable(now) && (now < renew_at_ || exchanging_ || now < retry_after_)) return token_;
      if (!usable(now) && !failure_.empty() && now < retry_after_) throw ShardingError(failure_);
      seen = exchanges_;
      exchanging_ = true;
    }
    std::lock_guard one_at_a_time(exchange_);
    {
      std::lock_guard lock(state_);
      const auto now = Steady::now();
      if (exchanges_ != seen) {  // one ended while this thread waited: its outcome
        if (usable(now)) return token_;
        if (!failure_.empty()) throw ShardingError(failure_);
      }
      exchanging_ = true;
    }
    const auto started = Steady::now();
    std::string token, failure;
    long long lifetime = 0;
    try {
      std::tie(token, lifetime) = exchange();
    } catch (const std::exception& e) {
      failure = e.what();
    }
    std::lock_guard lock(state_);
    exchanging_ = false;
    ++exchanges_;
    failure_ = failure;
    if (failure.empty()) {
      const std::chrono::seconds life(lifetime);
      token_ = std::move(token);
      expires_ = started + life;
      grace_ = std::min<Steady::duration>(kGrace, life / 4);
      renew_at_ = expires_ - std::min<Steady::duration>(kRenewBefore, life / 2);
      return token_;
    }
    retry_after_ = Steady::now() + kRetryAfter;
    if (!usable(Steady::now())) throw ShardingError(failure_);
    return token_;
  }

 private:
  using Steady = std::chrono::steady_clock;
  // A token this close to its expiry is not sent (or a quarter of its
  // lifetime, when shorter): it could expire on the way.
  static constexpr std::chrono::seconds kGrace{10};
  static constexpr std::chrono::seconds kRetryAfter{10};

  bool usable(Steady::time_point now) const { return !token_.empty() && now < expires_ - grace_; }

  // One JWT bearer grant: the access token and its lifetime in seconds.
  std::pair<std::string, long long> exchange() {
    const long long now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    const std::string body =
        "grant_type=" + form_encode("urn:ietf:params:oauth:grant-type:jwt-bearer") +
        "&assertion=" + gcs_jwt_assertion(email_, pem_, key_id_, token_uri_, now);
    const std::string what = "POST " + token_uri_ + " (the token of " + email_ + ")";
    const auto t = perform(
        share_, exchange_policy(),
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
    // expires_in is optional (RFC 6749): without it, Google's hour. A
    // lifetime that is no positive number cannot be renewed in time.
    double seconds = static_cast<double>(kLifetime);
    if (const auto it = answer.find("expires_in"); it != answer.end() && it->is_number()) {
      seconds = it->get<double>();
      if (!(seconds >= 1)) {
        throw ShardingError(what + ": the token endpoint gave expires_in " + it->dump() +
                            ", not a lifetime of a second or more; check " + path_);
      }
    }
    return {answer["access_token"].get<std::string>(),
            static_cast<long long>(std::min(seconds, 86400.0))};
  }

  std::string path_, email_, pem_, key_id_, token_uri_;
  CurlShare share_;
  std::mutex exchange_;  // held through an exchange
  std::mutex state_;     // guards what follows
  std::string token_;
  Steady::time_point expires_{}, renew_at_{}, retry_after_{};
  Steady::duration grace_{};
  bool exchanging_ = false;
  std::uint64_t exchanges_ = 0;  // exchanges ended, successful or not
  std::string failure_;          // of the last exchange, "" when it succeeded
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
