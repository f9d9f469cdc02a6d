#include "auth/auth.hpp"
#include "auth/crypto.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace sg::auth {

std::string_view to_string(AuthError e) {
  switch (e) {
    case AuthError::kMissingToken:
      return "missing_token";
    case AuthError::kMalformedToken:
      return "malformed_token";
    case AuthError::kUnsupportedAlgorithm:
      return "unsupported_algorithm";
    case AuthError::kBadSignature:
      return "bad_signature";
    case AuthError::kExpired:
      return "token_expired";
    case AuthError::kRevoked:
      return "token_revoked";
    case AuthError::kNotYetValid:
      return "token_not_yet_valid";
    case AuthError::kMissingClaim:
      return "missing_claim";
    case AuthError::kBadClaim:
      return "bad_claim";
    case AuthError::kBadKey:
      return "bad_key";
    case AuthError::kBadAudience:
      return "bad_audience";
    case AuthError::kBadIssuer:
      return "bad_issuer";
    case AuthError::kUnknownKey:
      return "unknown_key";
  }
  return "unknown_auth_error";
}

// The usable keys of one JWK Set, immutable once built: verifications share them.
struct JwkSet::Keys {
  struct Key {
    std::optional<std::string> kid;
    crypto::PublicKey key;
  };
  std::vector<Key> keys;
};

namespace {

namespace json = boost::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using TimePoint = std::chrono::system_clock::time_point;

constexpr std::size_t kMaxTokenBytes = 8 * 1024;
// Later dates are clamped: libstdc++'s system_clock counts int64 nanoseconds, which run out
// in 2262, and a token that outlives 2200 is as good as eternal anyway.
constexpr std::int64_t kMaxEpochSeconds = 7'258'118'400;  // 2200-01-01T00:00:00Z
constexpr seconds kMaxLeeway{24 * 60 * 60};

enum class Alg { kHs256, kRs256, kEs256 };

std::optional<Alg> parse_alg(std::string_view alg) {
  // Exact, case-sensitive names (RFC 7518 §3.1); "none", "hs256" and friends are unknown.
  if (alg == "HS256") return Alg::kHs256;
  if (alg == "RS256") return Alg::kRs256;
  if (alg == "ES256") return Alg::kEs256;
  return std::nullopt;
}

std::string_view view(const json::string& s) {
  return std::string_view(s.data(), s.size());
}

// Parses JSON text that must be an object. Nothing escapes as an exception but bad_alloc.
std::optional<json::object> parse_object(std::string_view text, json::storage_ptr storage) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec, std::move(storage));
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.get_object());
}

// A NumericDate (RFC 7519 §2): integer or fractional seconds since the epoch.
Result<TimePoint> numeric_date(const json::value& v) {
  std::int64_t ms = 0;
  if (v.is_int64()) {
    ms = std::clamp<std::int64_t>(v.get_int64(), 0, kMaxEpochSeconds) * 1000;
  } else if (v.is_uint64()) {
    // Only values above INT64_MAX are stored as uint64.
    ms = kMaxEpochSeconds * 1000;
  } else if (v.is_double() && std::isfinite(v.get_double())) {
    const double s = std::clamp(v.get_double(), 0.0, static_cast<double>(kMaxEpochSeconds));
    ms = std::llround(s * 1000.0);
  } else {
    return AuthError::kBadClaim;
  }
  return TimePoint(milliseconds(ms));
}

std::string integer_text(const json::value& v) {
  std::array<char, 24> buf{};
  const auto r = v.is_int64() ? std::to_chars(buf.data(), buf.data() + buf.size(), v.get_int64())
                              : std::to_chars(buf.data(), buf.data() + buf.size(), v.get_uint64());
  return std::string(buf.data(), r.ptr);
}

// A required identifier claim: a non-empty string of at most max_bytes, or an integer in
// decimal.
// The user claim, by core's user id rule (a string with control characters would be a user no
// targeted publish could address): kBadClaim.
Result<std::string> user_claim(const json::object& claims, std::string_view name) {
  const json::value* v = claims.if_contains(name);
  if (v == nullptr) return AuthError::kMissingClaim;
  if (v->is_int64() || v->is_uint64()) return integer_text(*v);
  const json::string* s = v->if_string();
  if (s == nullptr || !core::user_id_text_ok(view(*s))) return AuthError::kBadClaim;
  return std::string(view(*s));
}

// The org_id claim, by core's org id rule, so that a token never names an org that a publish
// could not address (a negative number, a string with control characters): kBadClaim.
Result<std::string> org_claim(const json::object& claims, std::string_view name) {
  const json::value* v = claims.if_contains(name);
  if (v == nullptr) return AuthError::kMissingClaim;
  std::optional<std::string> org;
  if (v->is_uint64()) {
    org = core::org_id_from_integer(v->get_uint64());
  } else if (v->is_int64()) {
    org = core::org_id_from_integer(v->get_int64());
  } else if (const json::string* s = v->if_string()) {
    org = core::org_id_from_text(view(*s));
  }
  if (!org) return AuthError::kBadClaim;
  return std::move(*org);
}

// An optional array of strings; nullopt when absent. `null` is a wrong type, not absence:
// reading it as "no restriction" would widen what the token grants.
Result<std::optional<std::vector<std::string>>> string_list_claim(const json::object& claims,
                                                                  std::string_view name) {
  const json::value* v = claims.if_contains(name);
  if (v == nullptr) return std::optional<std::vector<std::string>>();
  const json::array* a = v->if_array();
  if (a == nullptr) return AuthError::kBadClaim;
  std::vector<std::string> out;
  out.reserve(a->size());
  for (const json::value& item : *a) {
    const json::string* s = item.if_string();
    if (s == nullptr) return AuthError::kBadClaim;
    out.emplace_back(view(*s));
  }
  return std::optional<std::vector<std::string>>(std::move(out));
}

// RFC 7519 §4.1.3: aud is one string or an array of them, and the token is for us when one of
// them is ours. Anything else (a number, an array with a non-string) is a bad audience.
bool audience_matches(const json::value& aud, std::string_view expected) {
  if (const json::string* one = aud.if_string()) return view(*one) == expected;
  const json::array* many = aud.if_array();
  if (many == nullptr) return false;
  bool found = false;
  for (const json::value& item : *many) {
    const json::string* s = item.if_string();
    if (s == nullptr) return false;
    if (view(*s) == expected) found = true;
  }
  return found;
}

using Jwk = JwkSet::Keys::Key;

// The value of a base64url member of a JWK, decoded; nullopt when absent or not base64url.
std::optional<std::string> jwk_bytes(const json::object& jwk, std::string_view name) {
  const json::value* v = jwk.if_contains(name);
  const json::string* s = v == nullptr ? nullptr : v->if_string();
  std::string out;
  if (s == nullptr || !core::base64url_decode(view(*s), out)) return std::nullopt;
  return out;
}

std::string_view jwk_text(const json::object& jwk, std::string_view name) {
  const json::value* v = jwk.if_contains(name);
  const json::string* s = v == nullptr ? nullptr : v->if_string();
  return s == nullptr ? std::string_view() : view(*s);
}

// RFC 7517 §5: {"keys":[…]}. Keys for something else are skipped, as RFC 7517 §5 asks of
// members a reader doesn't understand; what is left must be at least one key.
Result<std::vector<Jwk>> parse_jwks(std::string_view text) {
  const std::optional<json::object> set = parse_object(text, {});
  const json::value* keys = set ? set->if_contains("keys") : nullptr;
  if (keys == nullptr || !keys->is_array()) return AuthError::kBadKey;
  std::vector<Jwk> out;
  for (const json::value& item : keys->get_array()) {
    const json::object* jwk = item.if_object();
    if (jwk == nullptr) return AuthError::kBadKey;
    const std::string_view kty = jwk_text(*jwk, "kty");
    const std::string_view use = jwk_text(*jwk, "use");
    const std::string_view alg = jwk_text(*jwk, "alg");
    if (jwk->contains("use") && use != "sig") continue;
    std::optional<Result<crypto::PublicKey>> key;
    if (kty == "RSA" && (alg.empty() || alg == "RS256")) {
      const auto n = jwk_bytes(*jwk, "n");
      const auto e = jwk_bytes(*jwk, "e");
      if (!n || !e) continue;
      key = crypto::PublicKey::from_rsa_components(*n, *e);
    } else if (kty == "EC" && jwk_text(*jwk, "crv") == "P-256" && (alg.empty() || alg == "ES256")) {
      const auto x = jwk_bytes(*jwk, "x");
      const auto y = jwk_bytes(*jwk, "y");
      if (!x || !y) continue;
      key = crypto::PublicKey::from_p256_point(*x, *y);
    }
    if (!key || !*key) continue;
    Jwk usable{std::nullopt, std::move(**key)};
    if (const json::value* kid = jwk->if_contains("kid"); kid != nullptr && kid->is_string()) {
      usable.kid = std::string(view(kid->get_string()));
    }
    out.push_back(std::move(usable));
  }
  if (out.empty()) return AuthError::kBadKey;
  return out;
}

class JwtVerifier final : public TokenVerifier {
 public:
  JwtVerifier(VerifierOptions options, std::optional<crypto::PublicKey> key,
              std::shared_ptr<JwkSet> jwks, bool jwks_change, seconds leeway)
      : secret_(std::move(options.hs256_secret)),
        key_(std::move(key)),
        jwks_(std::move(jwks)),
        jwks_change_(jwks_change),
        leeway_(leeway),
        audience_(std::move(options.audience)),
        issuer_(std::move(options.issuer)),
        org_claim_(std::move(options.org_claim)),
        user_claim_(std::move(options.user_claim)) {}

  Result<Principal> verify(std::string_view token, TimePoint now) const override;

 private:
  // Which key verifies `alg`, decided by the configuration and never by the token, so a
  // public key is never mistaken for an HMAC secret.
  bool accepts(Alg alg, const JwkSet::Keys* keys) const {
    if (alg == Alg::kHs256) return !secret_.empty();
    if (jwks_change_) return true;
    const auto kind = kind_for(alg);
    return (key_ && key_->kind() == kind) ||
           (keys != nullptr && std::any_of(keys->keys.begin(), keys->keys.end(),
                                           [&](const Jwk& jwk) { return jwk.key.kind() == kind; }));
  }

  static crypto::PublicKey::Kind kind_for(Alg alg) {
    return alg == Alg::kRs256 ? crypto::PublicKey::Kind::kRsa : crypto::PublicKey::Kind::kEcP256;
  }

  // The public key for an RS256/ES256 token: the set's key named by kid, else the PEM key; a
  // token without kid takes the PEM key, or the set's only key of its kind. `unknown_kid`: the
  // token names a kid the set lacks and the PEM key stands in (its tokens may carry a kid too).
  // `keys` is the set's snapshot, kept alive by the caller while the key is used.
  Result<const crypto::PublicKey*> key_for(Alg alg, const json::object& header,
                                           const JwkSet::Keys* keys, bool& unknown_kid) const {
    const auto kind = kind_for(alg);
    const json::value* kid = header.if_contains("kid");
    if (kid != nullptr && !kid->is_string()) return AuthError::kMalformedToken;
    const crypto::PublicKey* only = nullptr;
    std::size_t of_kind = 0;
    static const std::vector<Jwk> kNone;
    for (const Jwk& jwk : keys != nullptr ? keys->keys : kNone) {
      if (jwk.key.kind() != kind) continue;
      if (kid != nullptr && jwk.kid && *jwk.kid == view(kid->get_string())) return &jwk.key;
      only = &jwk.key;
      ++of_kind;
    }
    if (key_ && key_->kind() == kind) {
      unknown_kid = kid != nullptr && jwks_;
      return &*key_;
    }
    if (kid == nullptr && of_kind == 1) return only;
    return unknown_key();
  }

  // A kid the set lacks may be a key the issuer has just rotated in.
  AuthError unknown_key() const {
    if (jwks_) jwks_->missed();
    return AuthError::kUnknownKey;
  }

  bool signature_valid(Alg alg, const crypto::PublicKey* key, std::string_view signing_input,
                       std::string_view signature) const {
    if (alg == Alg::kHs256) {
      const std::string mac = crypto::hmac_sha256(secret_, signing_input);
      return mac.size() == crypto::kHs256Bytes && core::constant_time_equal(mac, signature);
    }
    return key->verify(signing_input, signature);
  }

  Result<Principal> check_claims(const json::object& claims, TimePoint now) const;

  std::string secret_;
  std::optional<crypto::PublicKey> key_;
  std::shared_ptr<JwkSet> jwks_;  // null: no JWK Set
  bool jwks_change_;              // jwks_ is --jwks-url's, replaced while we verify
  seconds leeway_;
  std::string audience_;  // empty: aud not checked
  std::string issuer_;    // empty: iss not checked
  std::string org_claim_;
  std::string user_claim_;
};

Result<Principal> JwtVerifier::verify(std::string_view token, TimePoint now) const {
  if (token.empty()) return AuthError::kMissingToken;
  if (token.size() > kMaxTokenBytes) return AuthError::kMalformedToken;
  const std::size_t dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return AuthError::kMalformedToken;
  const std::size_t dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return AuthError::kMalformedToken;
  }
  std::string header_text;
  std::string payload_text;
  std::string signature;
  if (!core::base64url_decode(token.substr(0, dot1), header_text) ||
      !core::base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1), payload_text) ||
      !core::base64url_decode(token.substr(dot2 + 1), signature)) {
    return AuthError::kMalformedToken;
  }

  // Both documents fit in a few KiB (the token is capped), so parse them into one arena.
  std::array<unsigned char, 4096> arena;
  json::monotonic_resource resource(arena.data(), arena.size());
  const json::storage_ptr storage(&resource);

  const std::optional<json::object> header = parse_object(header_text, storage);
  if (!header) return AuthError::kMalformedToken;
  const json::value* alg_value = header->if_contains("alg");
  if (alg_value == nullptr || !alg_value->is_string()) return AuthError::kMalformedToken;
  const std::optional<Alg> alg = parse_alg(view(alg_value->get_string()));
  // One snapshot for the whole verification: a refresh may swap the set meanwhile.
  const std::shared_ptr<const JwkSet::Keys> keys = jwks_ ? jwks_->keys() : nullptr;
  if (!alg || !accepts(*alg, keys.get())) return AuthError::kUnsupportedAlgorithm;
  // RFC 7515 §4.1.11: a token that needs extensions we don't implement must be refused.
  if (header->contains("crit")) return AuthError::kUnsupportedAlgorithm;

  const crypto::PublicKey* key = nullptr;
  bool unknown_kid = false;
  if (*alg != Alg::kHs256) {
    const Result<const crypto::PublicKey*> found = key_for(*alg, *header, keys.get(), unknown_kid);
    if (!found) return found.error();
    key = *found;
  }
  if (!signature_valid(*alg, key, token.substr(0, dot2), signature)) {
    // Not the PEM key's token: its kid is one the set may not have loaded yet.
    return unknown_kid ? unknown_key() : AuthError::kBadSignature;
  }

  // Only signed claims are parsed.
  const std::optional<json::object> claims = parse_object(payload_text, storage);
  if (!claims) return AuthError::kMalformedToken;
  return check_claims(*claims, now);
}

Result<Principal> JwtVerifier::check_claims(const json::object& claims, TimePoint now) const {
  Principal principal;

  const json::value* exp = claims.if_contains("exp");
  if (exp == nullptr) return AuthError::kMissingClaim;
  const Result<TimePoint> expiry = numeric_date(*exp);
  if (!expiry) return expiry.error();
  if (now >= *expiry + leeway_) return AuthError::kExpired;
  principal.expiry = *expiry;

  if (const json::value* nbf = claims.if_contains("nbf")) {
    const Result<TimePoint> not_before = numeric_date(*nbf);
    if (!not_before) return not_before.error();
    if (now + leeway_ < *not_before) return AuthError::kNotYetValid;
  }

  if (!issuer_.empty()) {
    const json::value* iss = claims.if_contains("iss");
    const json::string* text = iss == nullptr ? nullptr : iss->if_string();
    if (text == nullptr || view(*text) != issuer_) return AuthError::kBadIssuer;
  }
  if (!audience_.empty()) {
    const json::value* aud = claims.if_contains("aud");
    if (aud == nullptr || !audience_matches(*aud, audience_)) return AuthError::kBadAudience;
  }

  if (const json::value* iat = claims.if_contains("iat")) {
    if (const Result<TimePoint> issued = numeric_date(*iat)) {
      principal.issued_at = std::chrono::duration_cast<seconds>(issued->time_since_epoch()).count();
    }
  }

  Result<std::string> user = user_claim(claims, user_claim_);
  if (!user) return user.error();
  principal.user = std::move(*user);

  Result<std::string> org = org_claim(claims, org_claim_);
  if (!org) return org.error();
  principal.org = std::move(*org);

  auto services = string_list_claim(claims, "services");
  if (!services) return services.error();
  principal.services = std::move(*services);

  auto rooms = string_list_claim(claims, "rooms");
  if (!rooms) return rooms.error();
  principal.rooms = std::move(*rooms);

  return principal;
}

}  // namespace

Result<std::shared_ptr<const TokenVerifier>> TokenVerifier::create(const VerifierOptions& options) {
  if (options.hs256_secret.empty() && options.public_key_pem.empty() && options.jwks.empty() &&
      !options.jwk_set) {
    return AuthError::kBadKey;
  }
  if (!options.jwks.empty() && options.jwk_set) return AuthError::kBadKey;
  if (options.org_claim.empty() || options.user_claim.empty()) return AuthError::kBadKey;
  std::optional<crypto::PublicKey> key;
  if (!options.public_key_pem.empty()) {
    Result<crypto::PublicKey> loaded = crypto::PublicKey::from_pem(options.public_key_pem);
    if (!loaded) return loaded.error();
    key = std::move(*loaded);
  }
  std::shared_ptr<JwkSet> jwks = options.jwk_set;
  if (!options.jwks.empty()) {
    jwks = std::make_shared<JwkSet>();
    if (Result<std::size_t> parsed = jwks->replace(options.jwks); !parsed) return parsed.error();
  }
  const bool jwks_change = options.jwk_set != nullptr;
  const seconds leeway = std::clamp(options.leeway, seconds{0}, kMaxLeeway);
  return std::shared_ptr<const TokenVerifier>(std::make_shared<const JwtVerifier>(
      options, std::move(key), std::move(jwks), jwks_change, leeway));
}

JwkSet::JwkSet() = default;
JwkSet::~JwkSet() = default;

Result<std::size_t> JwkSet::replace(std::string_view text) {
  Result<std::vector<Jwk>> parsed = parse_jwks(text);
  if (!parsed) return parsed.error();
  const std::size_t count = parsed->size();
  auto keys = std::make_shared<Keys>();
  keys->keys = std::move(*parsed);
  keys_.store(std::move(keys));
  return count;
}

std::string mint_hs256(std::string_view claims_json, std::string_view secret) {
  static constexpr std::string_view kHeader = R"({"alg":"HS256","typ":"JWT"})";
  std::string token = core::base64url_encode(kHeader);
  token += '.';
  token += core::base64url_encode(claims_json);
  const std::string mac = crypto::hmac_sha256(secret, token);
  token += '.';
  token += core::base64url_encode(mac);
  return token;
}

}  // namespace sg::auth
