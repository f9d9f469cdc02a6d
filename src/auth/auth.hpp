// auth: who is asking. Verifies the product's JWTs into a Principal (HS256 with a shared
// secret, RS256/ES256 with a PEM public key or a JWK Set), checks producer API keys and browser
// Origins. Pure computation: safe from any thread after construction; the one mutable part, a
// JwkSet fetched from a URL, is swapped whole and atomically.
#pragma once

#include "core/core.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sg::auth {

enum class AuthError {
  kMissingToken = 1,      // no access_token / Authorization: Bearer
  kMalformedToken,        // not three base64url parts of JSON
  kUnsupportedAlgorithm,  // alg none, unknown, or not the kind the configured key verifies
  kBadSignature,
  kExpired,       // exp in the past (beyond leeway)
  kNotYetValid,   // nbf in the future (beyond leeway)
  kMissingClaim,  // the user claim (sub), the org claim (org_id) or exp absent
  kBadClaim,      // a claim of the wrong type or out of range (an org id publish can't name)
  kBadKey,        // configuration: the secret or PEM key is unusable
  kBadAudience,   // --jwt-audience set and aud absent, of the wrong type, or not naming it
  kBadIssuer,     // --jwt-issuer set and iss absent or different
  kUnknownKey,    // RS256/ES256 with a kid the key set doesn't hold (or no kid, and no one key)
  kRevoked,       // issued before a producer's revocation of its user (not the verifier's)
};
std::string_view to_string(AuthError e);  // "token_expired", "bad_signature", …
constexpr const char* error_domain(AuthError) {
  return "auth";
}
SG_DECLARE_ERROR_ENUM(AuthError)

struct Principal {
  // The org claim (org_id unless --org-claim) under core's org id rule (what publish's orgId
  // accepts): a non-negative integer in decimal, or a string of 1..128 bytes without control
  // characters.
  std::string org;
  std::string user;  // the user claim (sub unless --user-claim)
  // services claim: the services this user may subscribe to; nullopt = no restriction.
  std::optional<std::vector<std::string>> services;
  // rooms claim: the chat rooms this user may join; nullopt = any room of the org.
  std::optional<std::vector<std::string>> rooms;
  std::chrono::system_clock::time_point expiry;
  // iat claim in unix seconds; nullopt when absent or not a NumericDate (revocations treat
  // such a token as issued before them).
  std::optional<std::int64_t> issued_at;
};

// The RS256/ES256 keys of a JWK Set (RFC 7517), chosen by a token's kid: --jwks-file's, read
// once, or --jwks-url's, which the fetcher replaces after each good fetch. A verification
// takes one snapshot (an atomic shared_ptr load) and so sees the old set or the new, never a
// mix. Thread-safe.
class JwkSet {
 public:
  struct Keys;  // the parsed keys; defined where they are verified

  JwkSet();
  ~JwkSet();
  JwkSet(const JwkSet&) = delete;
  JwkSet& operator=(const JwkSet&) = delete;

  // Parses `text`, a JWK Set's JSON. Keys it can't use (other types or curves, "use":"enc",
  // another alg, RSA under 2048 bits) are skipped. When at least one key is usable, the set
  // becomes these keys and their count is returned; otherwise kBadKey, and the keys in use stay.
  Result<std::size_t> replace(std::string_view text);
  // True once a replace() succeeded.
  bool loaded() const { return keys_.load() != nullptr; }
  // The keys in use; null until loaded.
  std::shared_ptr<const Keys> keys() const { return keys_.load(); }

  // `on_miss` runs on the verifying thread whenever a token's kid names no key of the set, so
  // the set's owner can fetch it again; it must be cheap and thread-safe. Set before the first
  // verification, never after.
  void on_unknown_kid(std::function<void()> on_miss) { on_miss_ = std::move(on_miss); }
  void missed() const {
    if (on_miss_) on_miss_();
  }

 private:
  std::atomic<std::shared_ptr<const Keys>> keys_;
  std::function<void()> on_miss_;
};

struct VerifierOptions {
  std::string hs256_secret;    // --jwt-secret; empty = HS256 disabled
  std::string public_key_pem;  // --jwt-public-key contents (RSA → RS256, EC P-256 → ES256)
  // Clock skew allowed on exp and nbf (--jwt-leeway); clamped to [0, 24 h].
  std::chrono::seconds leeway{30};
  // Tokens from other issuers: when not empty, aud (a string or an array of strings) must name
  // `audience` and iss must equal `issuer` (--jwt-audience, --jwt-issuer).
  // `{}`: an aggregate initializer may leave them out (-Wmissing-field-initializers).
  std::string audience{};
  std::string issuer{};
  // Which claims name the org and the user (--org-claim, --user-claim).
  std::string org_claim = "org_id";
  std::string user_claim = "sub";
  // A JWK Set's JSON text (--jwks-file): RS256 and ES256 keys, chosen by the token's kid. Keys
  // it can't use (other types or curves, "use":"enc", RSA under 2048 bits) are skipped; a set
  // with no usable key is kBadKey.
  std::string jwks{};
  // --jwks-url's set, which its fetcher replaces while tokens are verified (it may be empty at
  // first: such tokens are kUnknownKey until it loads). With it, RS256 and ES256 are always
  // accepted, since the next set may hold keys of either kind. Exclusive with `jwks`.
  std::shared_ptr<JwkSet> jwk_set{};
};

class TokenVerifier {
 public:
  // kBadKey when no key is set, the PEM or the JWK Set doesn't parse, or a claim name is empty.
  static Result<std::shared_ptr<const TokenVerifier>> create(const VerifierOptions& options);
  virtual ~TokenVerifier() = default;

  // Checks the signature against the configured key for the token's alg (alg must match the
  // key type: an RS256 public key is never used as an HS256 secret), then exp/nbf with
  // leeway, iss and aud when configured, and the claims. An empty token is kMissingToken; one over
  // 8 KiB is kMalformedToken. Never throws.
  virtual Result<Principal> verify(std::string_view token,
                                   std::chrono::system_clock::time_point now) const = 0;
};

// Signs claims (a JSON object's text) as an HS256 JWT. For --dev sample tokens and tests.
std::string mint_hs256(std::string_view claims_json, std::string_view secret);

// True when `presented` equals one of `keys`; constant time in the key contents. An empty
// presented key never matches.
bool api_key_matches(std::string_view presented, const std::vector<std::string>& keys);

// Browser Origin policy (--allowed-origins). Empty list (or only blank entries): every Origin
// allowed; "*" likewise. Entries are exact origins ("https://app.example.com", scheme and host
// case-insensitive, default ports implied) or a leading wildcard ("https://*.example.com",
// any subdomain but not example.com itself). A request without Origin (not a browser) is
// allowed. Entries that aren't scheme://host[:port] (such as "null") match only themselves.
class OriginPolicy {
 public:
  explicit OriginPolicy(std::vector<std::string> allowed);
  bool allows(std::optional<std::string_view> origin) const;

 private:
  struct Rule {
    std::string scheme;  // lowercase
    std::string host;    // lowercase; for a wildcard the suffix after '*' (".example.com")
    std::string port;    // empty for the scheme's default port
    bool wildcard = false;
  };
  bool allow_all_ = false;
  std::vector<Rule> rules_;
  std::vector<std::string> opaque_;  // lowercase entries matched verbatim
};

// Extracts the bearer token from an Authorization header value (scheme case-insensitive,
// extra spaces tolerated); empty if not "Bearer <t>". The view points into `authorization`.
std::string_view bearer_token(std::string_view authorization);

}  // namespace sg::auth

template <>
struct boost::system::is_error_code_enum<sg::auth::AuthError> : std::true_type {};
