// PacedReplay: the history a connection still owes its client for the services it resumed, fed
// to the outbox as the socket drains: a page at a time from the hub, and only while the outbox is
// below half its bound, so a backlog larger than the outbox is no slow consumer and live events
// of the connection's other services keep room. When a service's history is through, the owner
// puts it live (the hub then sends the live events it held meanwhile). StreamSession and
// SseConnection each hold one; it owns no I/O and keeps no reference to its owner. Worker
// thread only.
#pragma once

#include "broker/broker.hpp"
#include "hub/hub.hpp"

#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sg::stream {

class PacedReplay {
 public:
  // What pumping needs of the connection that holds the replay.
  class Owner {
   public:
    // Whether replaying may go on (the connection is open and has not lost events).
    virtual bool replay_open() const = 0;
    virtual std::size_t replay_queued_bytes() const = 0;
    // What one event costs in the outbox once framed for this connection.
    virtual std::size_t replay_frame_bytes(const broker::Event& event) const = 0;
    virtual void replay_deliver(const broker::EventPtr& event) = 0;
    // Asks the hub for `service`'s next page, to come back through on_page().
    virtual void replay_read_page(const std::string& service) = 0;
    // `service`'s history is all in the outbox: the connection goes live on it.
    virtual void replay_done(const std::string& service) = 0;

   protected:
    ~Owner() = default;
  };

  bool active() const { return replays_ != nullptr; }
  bool has(std::string_view service) const;
  // A resumed service's first page (hub::AttachResult) and whether more follow.
  void add(std::string service, const std::vector<broker::EventPtr>& first_page, bool more);
  void drop(std::string_view service);
  void clear() { replays_.reset(); }

  // Hands `owner` what fits an outbox of `outbox_bytes`, asks for pages that are used up and
  // ends the services whose history is through.
  void pump(Owner& owner, std::size_t outbox_bytes);

  enum class Page { kQueued, kStale, kFailed };
  // A page read for `service`: queued (then pump()), stale (the service was dropped or the
  // replay ended meanwhile: ignore it), or failed (page.failure: the owner ends the connection).
  Page on_page(const std::string& service, hub::ReplayPage& page);

 private:
  struct Replay {
    std::string service;
    std::deque<broker::EventPtr> queued;  // read, not yet in the outbox
    bool more = false;                    // the hub has more pages
    bool reading = false;                 // a page is being read
  };
  // Null when nothing replays (most of the time): an idle connection pays one pointer.
  std::unique_ptr<std::vector<Replay>> replays_;
};

}  // namespace sg::stream
