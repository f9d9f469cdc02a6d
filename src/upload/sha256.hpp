// upload internals: an incremental SHA-256 over OpenSSL's EVP interface, for the running hash
// of an upload's bytes. Not thread-safe; used on the manager's I/O thread.
#pragma once

#include "upload/upload.hpp"

#include <string_view>

struct evp_md_ctx_st;

namespace sg::upload {

class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(Sha256Hasher&& other) noexcept;
  Sha256Hasher& operator=(Sha256Hasher&& other) noexcept;
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void update(std::string_view bytes);
  // The digest of everything since construction or reset(); the hasher starts over after.
  Sha256 finish();
  void reset();

 private:
  evp_md_ctx_st* ctx_;
};

}  // namespace sg::upload
