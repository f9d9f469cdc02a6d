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

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) {
      return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

}  // namespace

std::string_view bearer_token(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer";
  const std::string_view value = trim(authorization);
  if (value.size() <= kScheme.size() || !iequals(value.substr(0, kScheme.size()), kScheme) ||
      !is_space(value[kScheme.size()])) {
    return {};
  }
  const std::string_view token = trim(value.substr(kScheme.size()));
  // A credential is one token68 (RFC 7235 §2.1); anything after a space is not ours to guess.
  for (char c : token) {
    if (is_space(c)) return {};
  }
  return token;
}

}  // namespace sg::auth
