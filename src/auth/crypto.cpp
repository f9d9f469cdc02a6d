#include "auth/crypto.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <array>
#include <climits>

namespace sg::auth::crypto {
namespace {

const unsigned char* bytes(std::string_view s) {
  // OpenSSL treats a null key pointer as "keep the previous key", never as "empty key".
  static const unsigned char kEmpty = 0;
  return s.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(s.data());
}

template <class T, void (*Free)(T*)>
struct Freer {
  void operator()(T* p) const { Free(p); }
};
using BioPtr = std::unique_ptr<BIO, Freer<BIO, BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Freer<X509, X509_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Freer<ECDSA_SIG, ECDSA_SIG_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, Freer<BIGNUM, BN_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Freer<EVP_MD_CTX, EVP_MD_CTX_free>>;
using DecoderPtr =
    std::unique_ptr<OSSL_DECODER_CTX, Freer<OSSL_DECODER_CTX, OSSL_DECODER_CTX_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Freer<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, Freer<OSSL_PARAM, OSSL_PARAM_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Freer<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;

// A public key of `type` ("RSA", "EC") from the parameters `build` pushes; nullptr on failure.
template <class Build>
EVP_PKEY* public_key_from_params(const char* type, Build build) {
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld || !build(bld.get())) return nullptr;
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return nullptr;
  }
  return pkey;
}

// SPKI and PKCS#1 public keys, whichever the PEM label says.
EVP_PKEY* decode_public_key(std::string_view pem) {
  EVP_PKEY* pkey = nullptr;
  DecoderPtr ctx(OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", nullptr, nullptr,
                                               OSSL_KEYMGMT_SELECT_PUBLIC_KEY, nullptr, nullptr));
  if (!ctx) return nullptr;
  const unsigned char* data = bytes(pem);
  std::size_t len = pem.size();
  if (OSSL_DECODER_from_data(ctx.get(), &data, &len) != 1) return nullptr;
  return pkey;
}

EVP_PKEY* certificate_public_key(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return nullptr;
  return X509_get_pubkey(cert.get());
}

bool is_p256(EVP_PKEY* pkey) {
  std::array<char, 64> name{};
  std::size_t len = 0;
  if (EVP_PKEY_get_group_name(pkey, name.data(), name.size(), &len) != 1) return false;
  int nid = OBJ_txt2nid(name.data());
  if (nid == NID_undef) nid = EC_curve_nist2nid(name.data());
  return nid == NID_X9_62_prime256v1;
}

}  // namespace

std::string hmac_sha256(std::string_view key, std::string_view data) {
  if (key.size() > INT_MAX) return {};
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), bytes(key), static_cast<int>(key.size()), bytes(data), data.size(),
           mac.data(), &len) == nullptr) {
    ERR_clear_error();
    return {};
  }
  return std::string(reinterpret_cast<const char*>(mac.data()), len);
}

Result<PublicKey> PublicKey::from_pem(std::string_view pem) {
  // A verifier has no use for signing material; refusing it keeps a private key from being
  // deployed on every gateway node by mistake.
  if (pem.empty() || pem.size() > INT_MAX || pem.find("PRIVATE KEY") != std::string_view::npos) {
    return AuthError::kBadKey;
  }
  EVP_PKEY* raw = decode_public_key(pem);
  if (raw == nullptr) raw = certificate_public_key(pem);
  ERR_clear_error();
  if (raw == nullptr) return AuthError::kBadKey;
  std::shared_ptr<EVP_PKEY> pkey(raw, EVP_PKEY_free);

  if (EVP_PKEY_is_a(raw, "RSA")) {
    if (EVP_PKEY_get_bits(raw) < kMinRsaBits) return AuthError::kBadKey;
    return PublicKey(std::move(pkey), Kind::kRsa);
  }
  if (EVP_PKEY_is_a(raw, "EC") && is_p256(raw)) {
    ERR_clear_error();
    return PublicKey(std::move(pkey), Kind::kEcP256);
  }
  ERR_clear_error();
  return AuthError::kBadKey;
}

Result<PublicKey> PublicKey::from_rsa_components(std::string_view n, std::string_view e) {
  if (n.empty() || e.empty() || n.size() > 2048 || e.size() > 16) return AuthError::kBadKey;
  BignumPtr bn_n(BN_bin2bn(bytes(n), static_cast<int>(n.size()), nullptr));
  BignumPtr bn_e(BN_bin2bn(bytes(e), static_cast<int>(e.size()), nullptr));
  EVP_PKEY* raw = nullptr;
  if (bn_n && bn_e) {
    raw = public_key_from_params("RSA", [&](OSSL_PARAM_BLD* bld) {
      return OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n.get()) == 1 &&
             OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e.get()) == 1;
    });
  }
  ERR_clear_error();
  if (raw == nullptr) return AuthError::kBadKey;
  std::shared_ptr<EVP_PKEY> pkey(raw, EVP_PKEY_free);
  if (EVP_PKEY_get_bits(raw) < kMinRsaBits) return AuthError::kBadKey;
  return PublicKey(std::move(pkey), Kind::kRsa);
}

Result<PublicKey> PublicKey::from_p256_point(std::string_view x, std::string_view y) {
  constexpr std::size_t kCoordinateBytes = 32;
  if (x.size() != kCoordinateBytes || y.size() != kCoordinateBytes) return AuthError::kBadKey;
  // SEC 1 uncompressed point: 0x04 || X || Y.
  std::string point(1, '\x04');
  point.append(x);
  point.append(y);
  static constexpr char kGroup[] = "prime256v1";
  EVP_PKEY* raw = public_key_from_params("EC", [&](OSSL_PARAM_BLD* bld) {
    return OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, kGroup, 0) == 1 &&
           OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                            point.size()) == 1;
  });
  if (raw == nullptr) {
    ERR_clear_error();
    return AuthError::kBadKey;
  }
  std::shared_ptr<EVP_PKEY> pkey(raw, EVP_PKEY_free);
  // A point off the curve would make every verification meaningless (invalid-curve attacks).
  PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, raw, nullptr));
  const bool on_curve = check && EVP_PKEY_public_check(check.get()) == 1;
  ERR_clear_error();
  if (!on_curve) return AuthError::kBadKey;
  return PublicKey(std::move(pkey), Kind::kEcP256);
}

bool PublicKey::verify(std::string_view data, std::string_view signature) const {
  std::string der;
  if (kind_ == Kind::kEcP256) {
    der = es256_raw_to_der(signature);
    if (der.empty()) return false;
    signature = der;
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  const bool ok =
      ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey_.get()) == 1 &&
      EVP_DigestVerify(ctx.get(), bytes(signature), signature.size(), bytes(data), data.size()) ==
          1;
  // Failed verifications leave entries on this thread's error queue; don't let them surface
  // in an unrelated TLS call later.
  ERR_clear_error();
  return ok;
}

std::string es256_raw_to_der(std::string_view raw) {
  if (raw.size() != kEs256Bytes) return {};
  const unsigned char* p = bytes(raw);
  constexpr int kHalf = static_cast<int>(kEs256Bytes / 2);
  BignumPtr r(BN_bin2bn(p, kHalf, nullptr));
  BignumPtr s(BN_bin2bn(p + kHalf, kHalf, nullptr));
  EcdsaSigPtr sig(ECDSA_SIG_new());
  if (!r || !s || !sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) {
    ERR_clear_error();
    return {};
  }
  // sig owns r and s now.
  (void)r.release();
  (void)s.release();
  const int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) {
    ERR_clear_error();
    return {};
  }
  std::string out(static_cast<std::size_t>(len), '\0');
  auto* q = reinterpret_cast<unsigned char*>(out.data());
  if (i2d_ECDSA_SIG(sig.get(), &q) != len) {
    ERR_clear_error();
    return {};
  }
  return out;
}

}  // namespace sg::auth::crypto
