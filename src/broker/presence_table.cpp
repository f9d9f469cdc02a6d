#include "broker/presence_table.hpp"

#include <algorithm>

namespace sg::broker {

PresenceEntry PresenceTable::set(const Channel& scope, const std::string& user,
                                 std::uint32_t connections,
                                 std::chrono::system_clock::time_point now) {
  const std::string key = scope.key();
  if (connections == 0) {
    PresenceEntry gone{user, now, 0};
    auto it = scopes_.find(key);
    if (it == scopes_.end()) return gone;
    if (auto u = it->second.users.find(user); u != it->second.users.end()) {
      gone.since = u->second.since;
      it->second.users.erase(u);
    }
    if (it->second.users.empty()) scopes_.erase(it);
    return gone;
  }
  Scope& entry = scopes_[key];
  if (entry.users.empty()) entry.channel = scope;
  auto [it, inserted] = entry.users.try_emplace(user, Local{now, connections});
  it->second.connections = connections;
  return PresenceEntry{user, it->second.since, connections};
}

std::vector<PresenceEntry> PresenceTable::list(const Channel& scope) const {
  std::vector<PresenceEntry> out;
  if (auto it = scopes_.find(scope.key()); it != scopes_.end()) {
    out.reserve(it->second.users.size());
    for (const auto& [user, local] : it->second.users) {
      out.push_back(PresenceEntry{user, local.since, local.connections});
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.user < b.user; });
  return out;
}

std::vector<PresenceEntry> merge_presence(std::vector<PresenceEntry> entries) {
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.user < b.user; });
  std::vector<PresenceEntry> out;
  for (auto& entry : entries) {
    if (!out.empty() && out.back().user == entry.user) {
      out.back().connections += entry.connections;
      out.back().since = std::min(out.back().since, entry.since);
      continue;
    }
    out.push_back(std::move(entry));
  }
  return out;
}

}  // namespace sg::broker
