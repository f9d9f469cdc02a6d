#include "broker/redis_slots.hpp"

#include "core/core.hpp"

#include <charconv>

namespace sg::broker::redis {
namespace {

template <class T>
bool parse_number(std::string_view text, T& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

bool is_string(const redisReply* r) {
  return r != nullptr && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

std::string_view text_of(const redisReply& r) {
  return std::string_view(r.str, r.len);
}

bool iequals_ascii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 'a' + 'A');
    if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 'a' + 'A');
    if (x != y) return false;
  }
  return true;
}

// A node's own host: Redis reports "?" or "" when it doesn't know how it is reached.
std::string host_or(std::string_view host, const NodeAddress& asked) {
  if (host.empty() || host == "?") return asked.host;
  return std::string(host);
}

}  // namespace

std::uint16_t crc16(std::string_view bytes) {
  std::uint16_t crc = 0;
  for (const char c : bytes) {
    crc ^= static_cast<std::uint16_t>(static_cast<unsigned char>(c) << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0 ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<std::uint16_t>(crc << 1);
    }
  }
  return crc;
}

std::uint16_t key_slot(std::string_view key) {
  const std::size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const std::size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return static_cast<std::uint16_t>(crc16(key) & (kSlotCount - 1));
}

std::string NodeAddress::text() const {
  std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  out.push_back(':');
  core::append_decimal(out, port);
  return out;
}

Result<std::vector<SlotRange>> parse_cluster_shards(const redisReply& reply, bool tls,
                                                    const NodeAddress& asked) {
  const ErrorCode bad = make_error_code(BrokerError::kUnavailable);
  if (reply.type != REDIS_REPLY_ARRAY) return bad;
  std::vector<SlotRange> ranges;
  for (std::size_t s = 0; s < reply.elements; ++s) {
    const redisReply& shard = *reply.element[s];
    if (shard.type != REDIS_REPLY_ARRAY) return bad;
    const redisReply* slots = nullptr;
    const redisReply* nodes = nullptr;
    for (std::size_t i = 0; i + 1 < shard.elements; i += 2) {
      if (!is_string(shard.element[i])) return bad;
      const std::string_view name = text_of(*shard.element[i]);
      if (name == "slots") slots = shard.element[i + 1];
      if (name == "nodes") nodes = shard.element[i + 1];
    }
    if (slots == nullptr || nodes == nullptr || slots->type != REDIS_REPLY_ARRAY ||
        nodes->type != REDIS_REPLY_ARRAY || slots->elements % 2 != 0) {
      return bad;
    }
    std::optional<NodeAddress> primary;
    for (std::size_t n = 0; n < nodes->elements && !primary; ++n) {
      const redisReply& node = *nodes->element[n];
      if (node.type != REDIS_REPLY_ARRAY) return bad;
      std::string_view role, ip, endpoint;
      long long port = -1;
      long long tls_port = -1;
      for (std::size_t i = 0; i + 1 < node.elements; i += 2) {
        if (!is_string(node.element[i])) return bad;
        const std::string_view name = text_of(*node.element[i]);
        const redisReply* value = node.element[i + 1];
        if (value->type == REDIS_REPLY_INTEGER) {
          if (name == "port") port = value->integer;
          if (name == "tls-port") tls_port = value->integer;
        } else if (is_string(value)) {
          if (name == "role") role = text_of(*value);
          if (name == "ip") ip = text_of(*value);
          if (name == "endpoint") endpoint = text_of(*value);
        }
      }
      if (role != "master") continue;
      const long long chosen = tls ? tls_port : port;
      if (chosen <= 0 || chosen > 65535) return bad;
      primary = NodeAddress{host_or(!endpoint.empty() && endpoint != "?" ? endpoint : ip, asked),
                            static_cast<std::uint16_t>(chosen)};
    }
    // A shard whose primary is gone (failed over, no replica) serves nothing for now.
    if (!primary) continue;
    for (std::size_t i = 0; i < slots->elements; i += 2) {
      const redisReply* a = slots->element[i];
      const redisReply* b = slots->element[i + 1];
      if (a->type != REDIS_REPLY_INTEGER || b->type != REDIS_REPLY_INTEGER || a->integer < 0 ||
          b->integer < a->integer || b->integer >= static_cast<long long>(kSlotCount)) {
        return bad;
      }
      ranges.push_back(SlotRange{static_cast<std::uint16_t>(a->integer),
                                 static_cast<std::uint16_t>(b->integer), *primary});
    }
  }
  return ranges;
}

Result<std::vector<SlotRange>> parse_cluster_slots(const redisReply& reply,
                                                   const NodeAddress& asked) {
  const ErrorCode bad = make_error_code(BrokerError::kUnavailable);
  if (reply.type != REDIS_REPLY_ARRAY) return bad;
  std::vector<SlotRange> ranges;
  for (std::size_t s = 0; s < reply.elements; ++s) {
    const redisReply& range = *reply.element[s];
    if (range.type != REDIS_REPLY_ARRAY || range.elements < 3) return bad;
    const redisReply* a = range.element[0];
    const redisReply* b = range.element[1];
    const redisReply* node = range.element[2];
    if (a->type != REDIS_REPLY_INTEGER || b->type != REDIS_REPLY_INTEGER || a->integer < 0 ||
        b->integer < a->integer || b->integer >= static_cast<long long>(kSlotCount) ||
        node->type != REDIS_REPLY_ARRAY || node->elements < 2 || !is_string(node->element[0]) ||
        node->element[1]->type != REDIS_REPLY_INTEGER || node->element[1]->integer <= 0 ||
        node->element[1]->integer > 65535) {
      return bad;
    }
    ranges.push_back(SlotRange{static_cast<std::uint16_t>(a->integer),
                               static_cast<std::uint16_t>(b->integer),
                               NodeAddress{host_or(text_of(*node->element[0]), asked),
                                           static_cast<std::uint16_t>(node->element[1]->integer)}});
  }
  return ranges;
}

std::optional<Redirect> parse_redirect(std::string_view error, const NodeAddress& asked) {
  Redirect out;
  if (error.starts_with("MOVED ")) {
    error.remove_prefix(6);
  } else if (error.starts_with("ASK ")) {
    error.remove_prefix(4);
    out.ask = true;
  } else {
    return std::nullopt;
  }
  const std::size_t space = error.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  if (!parse_number(error.substr(0, space), out.slot) || out.slot >= kSlotCount) {
    return std::nullopt;
  }
  const std::string_view address = error.substr(space + 1);
  const std::size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = address.substr(0, colon);
  if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
  if (!parse_number(address.substr(colon + 1), out.to.port) || out.to.port == 0) {
    return std::nullopt;
  }
  out.to.host = host_or(host, asked);
  return out;
}

std::optional<std::string_view> routing_key(std::span<const std::string_view> args) {
  if (args.size() < 2) return std::nullopt;
  const std::string_view command = args[0];
  if (iequals_ascii(command, "EVAL") || iequals_ascii(command, "EVALSHA")) {
    std::size_t keys = 0;
    if (args.size() < 4 || !parse_number(args[2], keys) || keys == 0) return std::nullopt;
    return args[3];
  }
  if (iequals_ascii(command, "PING") || iequals_ascii(command, "WAIT") ||
      iequals_ascii(command, "CLUSTER") || iequals_ascii(command, "CLIENT") ||
      iequals_ascii(command, "ASKING") || iequals_ascii(command, "INFO")) {
    return std::nullopt;
  }
  return args[1];
}

}  // namespace sg::broker::redis
