#include "upload/sha256.hpp"

#include <openssl/evp.h>

#include <cstdlib>

namespace sg::upload {

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  // Out of memory or a broken OpenSSL: nothing sensible to continue with.
  if (!ctx_ || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) std::abort();
}

Sha256Hasher::~Sha256Hasher() {
  EVP_MD_CTX_free(ctx_);
}

Sha256Hasher::Sha256Hasher(Sha256Hasher&& other) noexcept : ctx_(other.ctx_) {
  other.ctx_ = nullptr;
}

Sha256Hasher& Sha256Hasher::operator=(Sha256Hasher&& other) noexcept {
  std::swap(ctx_, other.ctx_);
  return *this;
}

void Sha256Hasher::update(std::string_view bytes) {
  EVP_DigestUpdate(ctx_, bytes.data(), bytes.size());
}

Sha256 Sha256Hasher::finish() {
  Sha256 out{};
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_, out.data(), &n);
  reset();
  return out;
}

void Sha256Hasher::reset() {
  EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr);
}

}  // namespace sg::upload
