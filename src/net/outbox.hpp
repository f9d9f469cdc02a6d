// Outbox: a connection's queue of frames waiting to be written, bounded in bytes. A frame is
// a small inline head (WebSocket header + per-recipient seq prefix) and an optional shared body
// that many connections reference. Used from the connection's worker only.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sg::net {

struct OutFrame {
  static constexpr std::size_t kHeadBytes = 64;
  std::array<char, kHeadBytes> head;
  std::uint8_t head_len = 0;
  std::string_view body;             // points into `keep`
  std::shared_ptr<const void> keep;  // keeps body alive (an Event or a string)
  std::size_t size() const { return head_len + body.size(); }
};

// Every queued byte counts against one limit, but frames meet it in two ways. An event can't
// wait for the client (holding it would take memory, dropping it a gap), so one that would pass
// the limit is refused and the caller closes the connection. A reply answers a request the
// client sent: it is always queued, and the caller stops reading requests while the queue is
// over the limit, so replies pass it by at most the one frame that crossed it.
class Outbox {
 public:
  enum class Push { kQueued, kOverLimit };

  explicit Outbox(std::size_t limit_bytes) : limit_bytes_(limit_bytes) {}

  // An event: queued unless that would pass the limit (kOverLimit: not queued).
  Push push(OutFrame&& frame);
  // A reply, or a frame outside the bound (the 101 response, the close frame): always queued.
  // kOverLimit: queued, and the queue is now over the limit.
  Push push_reply(OutFrame&& frame);
  // Frames of which only the newest matters: a pong (RFC 6455 §5.5.3 lets a server answer only
  // the latest of several pings, so a ping flood costs one frame) and an endpoint's status
  // report (upload progress, say).
  enum class Latest : std::uint8_t { kPong, kStatus };
  // A reply that replaces the one of the same kind queued by an earlier call if that one has not
  // started going out. `front_started`: the front frame is partly written and must stay as is.
  // Returns as push_reply() does.
  Push push_latest(OutFrame&& frame, Latest kind, bool front_started);

  bool empty() const { return head_ == frames_.size(); }
  std::size_t bytes() const { return bytes_; }
  std::size_t frames() const { return frames_.size() - head_; }
  std::size_t limit() const { return limit_bytes_; }
  bool over_limit() const { return bytes_ > limit_bytes_; }

  const OutFrame& at(std::size_t i) const { return frames_[head_ + i]; }
  // Drops `n` frames from the front.
  void pop(std::size_t n);
  // Drops every frame after the first `keep` ones.
  void truncate(std::size_t keep);
  // Frees the queue's storage; only when empty. Idle connections hold none.
  void release_memory();

 private:
  static constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t kLatestKinds = 2;

  std::size_t limit_bytes_;
  std::size_t bytes_ = 0;
  std::size_t head_ = 0;
  // Index in frames_ of the frame of each Latest kind that push_latest() may replace.
  std::array<std::size_t, kLatestKinds> latest_{kNone, kNone};
  std::vector<OutFrame> frames_;
};

}  // namespace sg::net
