#include "chat/chat.hpp"

#include "metrics/metrics.hpp"

#include <algorithm>

namespace sg::chat {

namespace {
std::string pair_key(std::string_view a, std::string_view b) {
  std::string key;
  key.reserve(a.size() + 1 + b.size());
  key.append(a);
  key.push_back('\0');
  key.append(b);
  return key;
}
}  // namespace

TokenBucket::TokenBucket(std::uint32_t burst, std::uint32_t per_minute, Clock::time_point now)
    : tokens_(burst), capacity_(burst), per_second_(per_minute / 60.0), updated_(now) {}

bool TokenBucket::take(Clock::time_point now) {
  if (now > updated_) {
    const double elapsed = std::chrono::duration<double>(now - updated_).count();
    tokens_ = std::min(capacity_, tokens_ + elapsed * per_second_);
    updated_ = now;
  }
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

Registry::Registry(broker::Broker& broker, ChatOptions options, metrics::Registry& metrics)
    : broker_(broker),
      options_(options),
      messages_(metrics.counter("streamgate_chat_messages_total",
                                "Chat messages stored through this node (retries not counted)")) {
  constexpr ChatError kLast = ChatError::kQuotaExceeded;
  refusals_.resize(static_cast<std::size_t>(kLast) + 1, nullptr);
  for (int e = 1; e <= static_cast<int>(kLast); ++e) {
    const auto error = static_cast<ChatError>(e);
    refusals_[static_cast<std::size_t>(e)] = &metrics.counter(
        "streamgate_chat_refusals_total", "Chat requests refused with an error frame, by reason",
        {{"reason", std::string(to_string(error))}});
  }
  metrics.gauge_callback("streamgate_chat_memberships",
                         "(room, user) pairs with a connection on this node",
                         [this](std::vector<metrics::Registry::Sample>& out) {
                           out.push_back({{}, static_cast<double>(memberships())});
                         });
}

Registry::~Registry() = default;

void Registry::count_message() {
  messages_.inc();
}

void Registry::count_refusal(ChatError error) {
  const auto i = static_cast<std::size_t>(error);
  if (i < refusals_.size() && refusals_[i] != nullptr) refusals_[i]->inc();
}

std::uint32_t Registry::enter(const broker::Channel& room, const std::string& user) {
  std::lock_guard lock(mu_);
  const std::uint32_t count = ++connections_[pair_key(room.key(), user)];
  if (count == 1) ++rooms_[room.key()];
  auto [it, fresh] = users_.try_emplace(
      pair_key(room.org, user),
      UserState{
          0, TokenBucket(options_.burst, options_.messages_per_minute, TokenBucket::Clock::now())});
  ++it->second.memberships;
  broker_.set_presence(room, user, count);
  return count;
}

std::uint32_t Registry::leave(const broker::Channel& room, const std::string& user) {
  std::lock_guard lock(mu_);
  auto it = connections_.find(pair_key(room.key(), user));
  if (it == connections_.end()) return 0;
  const std::uint32_t count = --it->second;
  if (count == 0) {
    connections_.erase(it);
    if (auto r = rooms_.find(room.key()); r != rooms_.end() && --r->second == 0) rooms_.erase(r);
  }
  auto user_it = users_.find(pair_key(room.org, user));
  // The bucket goes with the user's last membership: a user who leaves every room and comes
  // back starts with a full bucket, which costs at most one burst per join.
  if (user_it != users_.end() && --user_it->second.memberships == 0) users_.erase(user_it);
  broker_.set_presence(room, user, count);
  return count;
}

bool Registry::take_message_token(const std::string& org, const std::string& user,
                                  TokenBucket::Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = users_.find(pair_key(org, user));
  if (it == users_.end()) return false;
  return it->second.bucket.take(now);
}

std::size_t Registry::memberships() const {
  std::lock_guard lock(mu_);
  return connections_.size();
}

std::size_t Registry::rooms() const {
  std::lock_guard lock(mu_);
  return rooms_.size();
}

}  // namespace sg::chat
