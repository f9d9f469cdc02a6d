// Redis Cluster's key space: which of the 16384 hash slots a key belongs to, the slot map a
// cluster node describes (CLUSTER SHARDS, or CLUSTER SLOTS before Redis 7), and the -MOVED and
// -ASK redirections. Pure functions over bytes and parsed replies; no I/O. Internal to the
// broker module.
#pragma once

#include "broker/broker.hpp"

#include <hiredis/hiredis.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sg::broker::redis {

constexpr std::size_t kSlotCount = 16384;

// CRC16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster hashes with.
std::uint16_t crc16(std::string_view bytes);

// The key's slot: CRC16 of its hash tag (the bytes between the first '{' and the next '}',
// when that is not empty) or else of the whole key, mod 16384 — what CLUSTER KEYSLOT answers.
std::uint16_t key_slot(std::string_view key);

struct NodeAddress {
  std::string host;
  std::uint16_t port = 0;
  // "host:port" ("[v6]:port"), the key the router keeps connections under.
  std::string text() const;
  bool operator==(const NodeAddress&) const = default;
};

// A run of slots and the primary that serves it.
struct SlotRange {
  std::uint16_t first = 0;
  std::uint16_t last = 0;
  NodeAddress primary;
};

// CLUSTER SHARDS (Redis 7). `tls`: take each node's tls-port rather than its port. A node
// reported without an address ("?" or empty) takes `asked`'s host, as Redis means it.
// kUnavailable when the reply is not the documented shape.
Result<std::vector<SlotRange>> parse_cluster_shards(const redisReply& reply, bool tls,
                                                    const NodeAddress& asked);
// CLUSTER SLOTS (Redis 3 to 6; deprecated in 7 but still answered).
Result<std::vector<SlotRange>> parse_cluster_slots(const redisReply& reply,
                                                   const NodeAddress& asked);

// "-MOVED 3999 127.0.0.1:6381" / "-ASK 3999 127.0.0.1:6381"; nullopt for any other error.
struct Redirect {
  bool ask = false;  // ASK: this command only, after ASKING; MOVED: the slot's new home
  std::uint16_t slot = 0;
  NodeAddress to;
};
std::optional<Redirect> parse_redirect(std::string_view error, const NodeAddress& asked);

// The key a command is routed by: the first key of EVAL/EVALSHA (none when numkeys is 0), the
// channel of PUBLISH/SPUBLISH/SSUBSCRIBE/SUNSUBSCRIBE, else the first argument of a keyed
// command this broker sends (GET, XRANGE, …). nullopt: any primary may answer (PING, WAIT…).
std::optional<std::string_view> routing_key(std::span<const std::string_view> args);

}  // namespace sg::broker::redis
