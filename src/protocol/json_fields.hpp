// Internal to protocol: small helpers shared by the client message and publish parsers.
#pragma once

#include <boost/json.hpp>

#include <string_view>

namespace sg::protocol::detail {

// A field's value, or nullptr when it is absent or JSON null: optional fields may be sent
// as null by clients that serialize "no value" that way.
inline const boost::json::value* present(const boost::json::object& object, std::string_view key) {
  const boost::json::value* v = object.if_contains(key);
  if (v == nullptr || v->is_null()) return nullptr;
  return v;
}

// Control characters (C0 and DEL) in identifiers would end up in logs and Redis keys.
inline bool has_control_chars(std::string_view text) {
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) return true;
  }
  return false;
}

inline std::string_view view(const boost::json::string& s) {
  return {s.data(), s.size()};
}

}  // namespace sg::protocol::detail
