#include "auth/auth.hpp"

#include <algorithm>

namespace sg::auth {
namespace {

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), lower);
  return out;
}

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool valid_scheme(std::string_view s) {
  if (s.empty() || !is_alpha(s[0])) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.';
  });
}

// A registered name or IPv4 address: non-empty dot-separated labels.
bool valid_host_name(std::string_view h) {
  if (h.empty() || h.front() == '.' || h.back() == '.' || h.find("..") != std::string_view::npos) {
    return false;
  }
  return std::all_of(h.begin(), h.end(), [](char c) {
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_';
  });
}

bool valid_ip_literal(std::string_view h) {
  if (h.size() < 3 || h.front() != '[' || h.back() != ']') return false;
  return std::all_of(h.begin() + 1, h.end() - 1, [](char c) {
    return is_digit(c) || (lower(c) >= 'a' && lower(c) <= 'f') || c == ':' || c == '.';
  });
}

struct Parsed {
  std::string scheme;
  std::string host;
  std::string port;
};

// Splits "scheme://host[:port]" (the serialization browsers send) into lowercase parts, with
// the scheme's default port dropped so "https://a.com:443" equals "https://a.com".
std::optional<Parsed> parse_origin(std::string_view text) {
  const std::size_t sep = text.find("://");
  if (sep == std::string_view::npos || !valid_scheme(text.substr(0, sep))) return std::nullopt;
  Parsed out;
  out.scheme = lowercase(text.substr(0, sep));
  std::string_view rest = text.substr(sep + 3);

  std::string_view host;
  if (!rest.empty() && rest.front() == '[') {
    const std::size_t close = rest.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = rest.substr(0, close + 1);
    if (!valid_ip_literal(host)) return std::nullopt;
  } else {
    host = rest.substr(0, rest.find(':'));
    if (!valid_host_name(host)) return std::nullopt;
  }
  rest.remove_prefix(host.size());
  out.host = lowercase(host);

  if (!rest.empty()) {
    if (rest.front() != ':') return std::nullopt;
    const std::string_view port = rest.substr(1);
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), is_digit)) {
      return std::nullopt;
    }
    out.port = std::string(port);
  }
  const bool secure = out.scheme == "https" || out.scheme == "wss";
  const bool plain = out.scheme == "http" || out.scheme == "ws";
  if ((secure && out.port == "443") || (plain && out.port == "80")) out.port.clear();
  return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

OriginPolicy::OriginPolicy(std::vector<std::string> allowed) {
  bool any = false;
  for (const std::string& raw : allowed) {
    std::string_view entry = core::trim(raw);
    if (entry.empty()) continue;
    any = true;
    if (entry == "*") {
      allow_all_ = true;
      continue;
    }
    // Operators often paste origins with a trailing slash; browsers never send one.
    if (entry.size() > 1 && entry.back() == '/') entry.remove_suffix(1);

    const std::size_t star = entry.find("://*.");
    if (star != std::string_view::npos) {
      // Parse with a placeholder label so the suffix gets the same validation as a host.
      std::string probe(entry.substr(0, star + 3));
      probe += 'x';
      probe += entry.substr(star + 4);
      if (std::optional<Parsed> p = parse_origin(probe)) {
        rules_.push_back(Rule{std::move(p->scheme), p->host.substr(1), std::move(p->port), true});
        continue;
      }
    } else if (std::optional<Parsed> p = parse_origin(entry)) {
      rules_.push_back(Rule{std::move(p->scheme), std::move(p->host), std::move(p->port), false});
      continue;
    }
    opaque_.push_back(lowercase(entry));
  }
  if (!any) allow_all_ = true;
}

bool OriginPolicy::allows(std::optional<std::string_view> origin) const {
  if (!origin || allow_all_) return true;
  const std::string verbatim = lowercase(*origin);
  if (std::find(opaque_.begin(), opaque_.end(), verbatim) != opaque_.end()) return true;
  const std::optional<Parsed> p = parse_origin(*origin);
  if (!p) return false;
  return std::any_of(rules_.begin(), rules_.end(), [&](const Rule& r) {
    if (r.scheme != p->scheme || r.port != p->port) return false;
    // r.host starts with '.', so a match leaves at least one label in front of it.
    return r.wildcard ? p->host.size() > r.host.size() && ends_with(p->host, r.host)
                      : p->host == r.host;
  });
}

}  // namespace sg::auth
