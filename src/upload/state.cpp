#include "upload/state.hpp"

#include <charconv>
#include <vector>

namespace sg::upload {

namespace {

constexpr std::string_view kMagic = "streamgate-upload 1";

std::string hex_of(std::string_view s) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * s.size());
  for (unsigned char c : s) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

int nibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::optional<std::string> unhex(std::string_view s) {
  if (s.size() % 2 != 0) return std::nullopt;
  std::string out;
  out.reserve(s.size() / 2);
  for (std::size_t i = 0; i < s.size(); i += 2) {
    const int hi = nibble(s[i]);
    const int lo = nibble(s[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

std::optional<std::uint64_t> number(std::string_view s) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::int64_t millis(core::WallClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

core::WallClock::time_point from_millis(std::uint64_t ms) {
  return core::WallClock::time_point(
      std::chrono::duration_cast<core::WallClock::duration>(std::chrono::milliseconds(ms)));
}

void line(std::string& out, std::string_view key, std::string_view value) {
  out += key;
  out += ' ';
  out += value;
  out += '\n';
}

bool plausible_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (nibble(c) < 0) return false;
  }
  return true;
}

}  // namespace

std::string serialize_state(const UploadInfo& info, const std::optional<Sha256>& expected) {
  std::string out(kMagic);
  out += '\n';
  line(out, "id", info.id);
  line(out, "status", info.status == Status::kComplete ? "complete" : "uploading");
  line(out, "org", hex_of(info.owner.org));
  line(out, "user", hex_of(info.owner.user));
  line(out, "filename", hex_of(info.filename));
  line(out, "content_type", hex_of(info.content_type));
  line(out, "size", std::to_string(info.size));
  line(out, "offset", std::to_string(info.received));
  if (expected) line(out, "expected_sha256", to_hex(*expected));
  if (info.status == Status::kComplete) line(out, "sha256", info.sha256);
  line(out, "created_at", std::to_string(millis(info.created_at)));
  line(out, "updated_at", std::to_string(millis(info.updated_at)));
  line(out, "expires_at", std::to_string(millis(info.expires_at)));
  for (const auto& [k, v] : info.metadata) line(out, "meta", hex_of(k) + " " + hex_of(v));
  out += "end\n";
  return out;
}

std::optional<SavedState> parse_state(std::string_view text) {
  if (!text.starts_with(kMagic) || text.size() <= kMagic.size() || text[kMagic.size()] != '\n') {
    return std::nullopt;
  }
  text.remove_prefix(kMagic.size() + 1);
  SavedState s;
  // Each of these must appear exactly once; the rest are optional.
  enum Seen : unsigned {
    kId = 1,
    kStatus = 2,
    kOrg = 4,
    kUser = 8,
    kFilename = 16,
    kType = 32,
    kSize = 64,
    kOffset = 128,
    kCreated = 256,
    kUpdated = 512,
    kExpires = 1024,
  };
  constexpr unsigned kAll = 2047;
  unsigned seen = 0;
  bool ended = false;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    if (nl == std::string_view::npos) return std::nullopt;
    const std::string_view l = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    if (l == "end") {
      ended = true;
      break;
    }
    const auto sp = l.find(' ');
    if (sp == std::string_view::npos) return std::nullopt;
    const std::string_view key = l.substr(0, sp);
    const std::string_view value = l.substr(sp + 1);
    auto once = [&seen](unsigned bit) {
      if (seen & bit) return false;
      seen |= bit;
      return true;
    };
    auto text_field = [&](unsigned bit, std::string& out) {
      auto v = unhex(value);
      if (!once(bit) || !v) return false;
      out = std::move(*v);
      return true;
    };
    auto number_field = [&](unsigned bit, std::uint64_t& out) {
      auto v = number(value);
      if (!once(bit) || !v) return false;
      out = *v;
      return true;
    };
    auto time_field = [&](unsigned bit, core::WallClock::time_point& out) {
      std::uint64_t ms = 0;
      if (!number_field(bit, ms)) return false;
      out = from_millis(ms);
      return true;
    };
    bool ok = true;
    if (key == "id") {
      ok = once(kId) && plausible_id(value);
      s.info.id = std::string(value);
    } else if (key == "status") {
      ok = once(kStatus) && (value == "uploading" || value == "complete");
      s.info.status = value == "complete" ? Status::kComplete : Status::kUploading;
    } else if (key == "org") {
      ok = text_field(kOrg, s.info.owner.org);
    } else if (key == "user") {
      ok = text_field(kUser, s.info.owner.user);
    } else if (key == "filename") {
      ok = text_field(kFilename, s.info.filename);
    } else if (key == "content_type") {
      ok = text_field(kType, s.info.content_type);
    } else if (key == "size") {
      ok = number_field(kSize, s.info.size);
    } else if (key == "offset") {
      ok = number_field(kOffset, s.info.received);
    } else if (key == "expected_sha256") {
      s.expected = parse_sha256_hex(value);
      ok = s.expected.has_value();
    } else if (key == "sha256") {
      ok = parse_sha256_hex(value).has_value();
      s.info.sha256 = std::string(value);
    } else if (key == "created_at") {
      ok = time_field(kCreated, s.info.created_at);
    } else if (key == "updated_at") {
      ok = time_field(kUpdated, s.info.updated_at);
    } else if (key == "expires_at") {
      ok = time_field(kExpires, s.info.expires_at);
    } else if (key == "meta") {
      const auto sp2 = value.find(' ');
      auto k = unhex(value.substr(0, sp2));
      auto v = unhex(sp2 == std::string_view::npos ? std::string_view() : value.substr(sp2 + 1));
      ok = sp2 != std::string_view::npos && k && v && !k->empty();
      if (ok) s.info.metadata.emplace_back(std::move(*k), std::move(*v));
    } else {
      ok = false;
    }
    if (!ok) return std::nullopt;
  }
  if (!ended || !text.empty() || seen != kAll || s.info.received > s.info.size) {
    return std::nullopt;
  }
  if (s.info.status == Status::kComplete &&
      (s.info.sha256.empty() || s.info.received != s.info.size)) {
    return std::nullopt;
  }
  return s;
}

}  // namespace sg::upload
