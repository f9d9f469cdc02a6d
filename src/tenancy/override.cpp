#include "tenancy/tenancy.hpp"

#include "core/core.hpp"

#include <boost/json.hpp>

namespace sg::tenancy {

namespace {

ParsedOverride refused(std::string error, std::string field, std::string message) {
  ParsedOverride p;
  p.error = std::move(error);
  p.field = std::move(field);
  p.message = std::move(message);
  return p;
}

// A whole number in [0, kMaxQuotaValue]; JSON may spell it 5, 5.0 or 5e0.
std::optional<std::uint64_t> quota_value(const boost::json::value& v) {
  if (const auto* i = v.if_int64()) {
    if (*i < 0) return std::nullopt;
    const auto u = static_cast<std::uint64_t>(*i);
    return u <= kMaxQuotaValue ? std::optional(u) : std::nullopt;
  }
  if (const auto* u = v.if_uint64()) {
    return *u <= kMaxQuotaValue ? std::optional(*u) : std::nullopt;
  }
  if (const auto* d = v.if_double()) {
    if (!(*d >= 0) || *d > static_cast<double>(kMaxQuotaValue)) return std::nullopt;
    const auto u = static_cast<std::uint64_t>(*d);
    return static_cast<double>(u) == *d ? std::optional(u) : std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

ParsedOverride parse_override(std::string_view json) {
  boost::system::error_code ec;
  boost::json::value root = boost::json::parse(json, ec);
  if (ec) return refused("malformed_json", {}, "the body is not valid JSON");
  const auto* object = root.if_object();
  if (!object) {
    return refused("bad_body", {}, "the body must be a JSON object of quota names and numbers");
  }
  Override o;
  for (const auto& [key, value] : *object) {
    const auto quota = quota_from_name(key);
    if (!quota) {
      std::string message = "unknown quota " + std::string(key) + " (";
      for (std::size_t i = 0; i < kQuotaCount; ++i) {
        if (i > 0) message += ", ";
        message += quota_name(static_cast<Quota>(i));
      }
      message += ')';
      return refused("unknown_field", std::string(key), std::move(message));
    }
    const auto number = quota_value(value);
    if (!number) {
      return refused("bad_value", std::string(key),
                     std::string(key) + " must be a whole number from 0 (unlimited) to " +
                         std::to_string(kMaxQuotaValue));
    }
    o.values[static_cast<std::size_t>(*quota)] = *number;
  }
  ParsedOverride p;
  p.value = o;
  return p;
}

std::string serialize_override(const Override& o) {
  std::string out = "{";
  for (std::size_t i = 0; i < kQuotaCount; ++i) {
    if (!o.values[i]) continue;
    if (out.size() > 1) out += ',';
    out += '"';
    out += quota_name(static_cast<Quota>(i));
    out += "\":";
    core::append_decimal(out, *o.values[i]);
  }
  out += '}';
  return out;
}

}  // namespace sg::tenancy
