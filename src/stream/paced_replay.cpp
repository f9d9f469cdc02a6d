#include "stream/paced_replay.hpp"

#include <algorithm>

namespace sg::stream {

bool PacedReplay::has(std::string_view service) const {
  return replays_ && std::any_of(replays_->begin(), replays_->end(),
                                 [&](const Replay& r) { return r.service == service; });
}

void PacedReplay::add(std::string service, const std::vector<broker::EventPtr>& first_page,
                      bool more) {
  if (!replays_) replays_ = std::make_unique<std::vector<Replay>>();
  replays_->push_back(
      Replay{std::move(service), {first_page.begin(), first_page.end()}, more, false});
}

void PacedReplay::drop(std::string_view service) {
  if (!replays_) return;
  std::erase_if(*replays_, [&](const Replay& r) { return r.service == service; });
  if (replays_->empty()) replays_.reset();
}

void PacedReplay::pump(Owner& owner, std::size_t outbox_bytes) {
  // Half the outbox stays for live events of the connection's other services.
  const std::size_t low_water = outbox_bytes / 2;
  // replays_ is looked up afresh each round: the owner's calls may end the replay (a close).
  for (std::size_t i = 0; replays_ && i < replays_->size();) {
    if (!owner.replay_open()) return;
    Replay& replay = (*replays_)[i];
    while (!replay.queued.empty()) {
      const std::size_t size = owner.replay_frame_bytes(*replay.queued.front());
      const std::size_t queued = owner.replay_queued_bytes();
      // An event too big for even an empty outbox goes anyway, and fails as a live one would.
      if (queued > 0 && (queued >= low_water || queued + size > outbox_bytes)) break;
      const broker::EventPtr event = std::move(replay.queued.front());
      replay.queued.pop_front();
      owner.replay_deliver(event);
      if (!replays_) return;
    }
    if (!replay.queued.empty() || replay.reading) {
      ++i;
      continue;
    }
    if (replay.more) {
      replay.reading = true;
      owner.replay_read_page(replay.service);
      ++i;
      continue;
    }
    // Everything up to where history was read is queued: the held live events follow.
    const std::string service = std::move(replay.service);
    replays_->erase(replays_->begin() + static_cast<std::ptrdiff_t>(i));
    owner.replay_done(service);
  }
  if (replays_ && replays_->empty()) replays_.reset();
}

PacedReplay::Page PacedReplay::on_page(const std::string& service, hub::ReplayPage& page) {
  if (!replays_) return Page::kStale;
  auto it = std::find_if(replays_->begin(), replays_->end(),
                         [&](const Replay& r) { return r.service == service; });
  if (it == replays_->end() || !it->reading) return Page::kStale;
  if (!page.failure.empty()) return Page::kFailed;
  it->reading = false;
  it->more = page.more;
  it->queued.insert(it->queued.end(), page.events.begin(), page.events.end());
  return Page::kQueued;
}

}  // namespace sg::stream
