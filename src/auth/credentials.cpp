#include "auth/auth.hpp"

namespace sg::auth {

bool api_key_matches(std::string_view presented, const std::vector<std::string>& keys) {
  if (presented.empty()) return false;
  // Every key is compared, so the time taken doesn't tell which one (if any) matched.
  bool matched = false;
  for (const std::string& key : keys) {
    matched |= !key.empty() && core::constant_time_equal(presented, key);
  }
  return matched;
}

std::string_view bearer_token(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer";
  const std::string_view value = core::trim(authorization);
  if (value.size() <= kScheme.size() || !core::iequals(value.substr(0, kScheme.size()), kScheme) ||
      !core::is_ows(value[kScheme.size()])) {
    return {};
  }
  const std::string_view token = core::trim(value.substr(kScheme.size()));
  // A credential is one token68 (RFC 7235 §2.1); anything after a space is not ours to guess.
  for (char c : token) {
    if (core::is_ows(c)) return {};
  }
  return token;
}

}  // namespace sg::auth
