// auth internals: the OpenSSL side of JWT signatures — HMAC-SHA256, loading a PEM public key
// and checking RS256/ES256 signatures with it. Only token_verifier.cpp uses this. Keys are
// immutable after loading, so one PublicKey may verify from many threads at once.
#pragma once

#include "auth/auth.hpp"

#include <openssl/types.h>

#include <memory>
#include <string>
#include <string_view>

namespace sg::auth::crypto {

inline constexpr std::size_t kHs256Bytes = 32;
inline constexpr std::size_t kEs256Bytes = 64;  // JWS ES256 signatures are raw R || S
inline constexpr int kMinRsaBits = 2048;

// HMAC-SHA256 of `data` keyed by `key`: 32 raw bytes.
std::string hmac_sha256(std::string_view key, std::string_view data);

class PublicKey {
 public:
  enum class Kind { kRsa, kEcP256 };

  // Accepts a SubjectPublicKeyInfo ("BEGIN PUBLIC KEY"), a PKCS#1 "BEGIN RSA PUBLIC KEY" or an
  // X.509 certificate. kBadKey for anything else, for private keys, for RSA under kMinRsaBits
  // and for EC curves other than P-256.
  static Result<PublicKey> from_pem(std::string_view pem);
  // From a JWK's components, raw big-endian bytes (base64url-decoded): an RSA key's modulus and
  // exponent (kBadKey under kMinRsaBits), or a P-256 point's coordinates (32 bytes each; kBadKey
  // for a point not on the curve).
  static Result<PublicKey> from_rsa_components(std::string_view n, std::string_view e);
  static Result<PublicKey> from_p256_point(std::string_view x, std::string_view y);

  Kind kind() const { return kind_; }

  // True when `signature` is a valid RS256 (Kind::kRsa) or ES256 (Kind::kEcP256, raw R || S)
  // signature of `data`. Any malformed signature is simply false.
  bool verify(std::string_view data, std::string_view signature) const;

 private:
  PublicKey(std::shared_ptr<EVP_PKEY> pkey, Kind kind) : pkey_(std::move(pkey)), kind_(kind) {}

  std::shared_ptr<EVP_PKEY> pkey_;
  Kind kind_;
};

// Converts a raw 64-byte ES256 signature (R || S, big-endian) to the DER ECDSA-Sig-Value that
// EVP_DigestVerify expects. Empty on a wrong length.
std::string es256_raw_to_der(std::string_view raw);

}  // namespace sg::auth::crypto
