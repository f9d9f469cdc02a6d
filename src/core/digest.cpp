#include "core/core.hpp"

#include <openssl/evp.h>

#include <cstdlib>
#include <utility>

namespace sg::core {

namespace {

const EVP_MD* md(DigestAlgorithm algorithm) {
  switch (algorithm) {
    case DigestAlgorithm::kSha1:
      return EVP_sha1();
    case DigestAlgorithm::kMd5:
      return EVP_md5();
    case DigestAlgorithm::kSha256:
      break;
  }
  return EVP_sha256();
}

}  // namespace

std::size_t digest_size(DigestAlgorithm algorithm) {
  switch (algorithm) {
    case DigestAlgorithm::kSha1:
      return 20;
    case DigestAlgorithm::kMd5:
      return 16;
    case DigestAlgorithm::kSha256:
      break;
  }
  return 32;
}

Digest::Digest(DigestAlgorithm algorithm) : ctx_(EVP_MD_CTX_new()), algorithm_(algorithm) {
  // Out of memory or a broken OpenSSL: nothing sensible to continue with.
  if (!ctx_ || EVP_DigestInit_ex(ctx_, md(algorithm_), nullptr) != 1) std::abort();
}

Digest::~Digest() {
  EVP_MD_CTX_free(ctx_);
}

Digest::Digest(Digest&& other) noexcept : ctx_(other.ctx_), algorithm_(other.algorithm_) {
  other.ctx_ = nullptr;
}

Digest& Digest::operator=(Digest&& other) noexcept {
  std::swap(ctx_, other.ctx_);
  std::swap(algorithm_, other.algorithm_);
  return *this;
}

void Digest::update(std::string_view bytes) {
  EVP_DigestUpdate(ctx_, bytes.data(), bytes.size());
}

std::string Digest::finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_, out, &n);
  reset();
  return std::string(reinterpret_cast<const char*>(out), n);
}

void Digest::reset() {
  EVP_DigestInit_ex(ctx_, md(algorithm_), nullptr);
}

}  // namespace sg::core
