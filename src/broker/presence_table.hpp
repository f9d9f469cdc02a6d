// One node's presence: for each scope, each user's local connection count and since when. The
// memory broker's whole presence; the Redis broker's local half, which it writes to Redis on
// every change and on each heartbeat. Not thread-safe: its owner serializes access.
#pragma once

#include "broker/broker.hpp"

#include <chrono>
#include <string>
#include <unordered_map>
#include <vector>

namespace sg::broker {

class PresenceTable {
 public:
  // Per user; kept small, as an org scope holds one for every connected user of the node.
  struct Local {
    std::chrono::system_clock::time_point since;
    std::uint32_t connections = 0;
  };
  struct Scope {
    Channel channel;
    std::unordered_map<std::string, Local> users;
  };

  // Records the change and returns the user's entry after it (connections 0: removed; since
  // is kept from the first connection while any remains).
  PresenceEntry set(const Channel& scope, const std::string& user, std::uint32_t connections,
                    std::chrono::system_clock::time_point now);
  // The scope's users, sorted by user.
  std::vector<PresenceEntry> list(const Channel& scope) const;

  const std::unordered_map<std::string, Scope>& scopes() const { return scopes_; }

 private:
  std::unordered_map<std::string, Scope> scopes_;  // by Channel::key()
};

// Folds entries of several nodes into one per user (connections summed, earliest since),
// sorted by user.
std::vector<PresenceEntry> merge_presence(std::vector<PresenceEntry> entries);

}  // namespace sg::broker
