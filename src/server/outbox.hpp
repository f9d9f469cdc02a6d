// Outbox: a connection's queue of frames waiting to be written, bounded in bytes. A frame is
// a small inline head (WebSocket header + per-recipient seq prefix) and an optional shared body
// that many connections reference. Used from the connection's worker only.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sg::server {

struct OutFrame {
  static constexpr std::size_t kHeadBytes = 64;
  std::array<char, kHeadBytes> head;
  std::uint8_t head_len = 0;
  std::string_view body;             // points into `keep`
  std::shared_ptr<const void> keep;  // keeps body alive (an Event or a string)
  std::size_t size() const { return head_len + body.size(); }
};

class Outbox {
 public:
  enum class Push { kQueued, kOverLimit };

  explicit Outbox(std::size_t limit_bytes) : limit_bytes_(limit_bytes) {}

  // Queues unless that would pass the byte limit (then the caller closes the connection).
  // `force` queues regardless (close frames, handshake replies).
  Push push(OutFrame&& frame, bool force = false);
  bool empty() const { return head_ == frames_.size(); }
  std::size_t bytes() const { return bytes_; }
  std::size_t frames() const { return frames_.size() - head_; }

  const OutFrame& at(std::size_t i) const { return frames_[head_ + i]; }
  // Drops `n` frames from the front.
  void pop(std::size_t n);
  // Drops every frame after the first `keep` ones.
  void truncate(std::size_t keep);
  // Frees the queue's storage; only when empty. Idle connections hold none.
  void release_memory();

 private:
  std::size_t limit_bytes_;
  std::size_t bytes_ = 0;
  std::size_t head_ = 0;
  std::vector<OutFrame> frames_;
};

}  // namespace sg::server
