#include "net/worker.hpp"

#include "log/log.hpp"
#include "metrics/metrics.hpp"
#include "net/send_ring.hpp"
#include "net/ws_codec.hpp"
#include "net/ws_connection.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cmath>

namespace sg::net {

namespace {
constexpr std::size_t kScratchBytes = 64 * 1024;
constexpr auto kTick = std::chrono::milliseconds(100);
// Connections taken from the dirty queues per ring submission: the flush looks at the clock and
// at the round robin between submissions, so this bounds how long an org that just turned dirty
// waits behind another org's writes within one handler (5-10 us per loopback write, more when
// a write carries many frames).
constexpr std::size_t kFlushBatch = 8;
// How long one flush (or tick) handler runs before it yields to the next epoll poll and the
// input it brings (publish requests, broker deliveries): events that arrive during a long flush
// join the queues of connections not yet written instead of waiting for a flush of their own,
// and a small org's event waits for about one slice of another org's burst, not all of it.
// Yielding costs two posts and an epoll_wait(0), a few percent of a slice.
constexpr auto kSlice = std::chrono::microseconds(50);
// An input that turns at most this many connections of one org dirty, where none of that org was
// waiting, has them written before the handler returns, unless the worker is behind (more than
// kBehindInputs inputs queued), when they wait for the flush so that later events share their
// writes: an event for a few members is not queued behind another org's burst.
constexpr std::size_t kPromptFlushMax = 64;
constexpr std::size_t kBehindInputs = 4;
}  // namespace

Worker::Worker(std::size_t index, bool io_uring, metrics::Registry& registry)
    : index_(index),
      io_uring_(io_uring),
      guard_(boost::asio::make_work_guard(io_)),
      tick_(io_),
      scratch_(kScratchBytes),
      write_frames_(registry.histogram(
          "streamgate_write_frames",
          "Frames completed per WebSocket write (one send or io_uring entry); more than one "
          "when events queued for a connection faster than it was written",
          std::vector<double>(kWriteFrameBounds.begin(), kWriteFrameBounds.end()))) {}

Worker::~Worker() {
  join();
}

void Worker::start() {
  schedule_tick();
  thread_ = std::thread([this] {
    open_send_ring();  // on this thread: the ring is set up for a single submitting thread
    io_.run();
  });
}

void Worker::stop() {
  guard_.reset();
  io_.stop();
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::add(std::shared_ptr<WsConnection> connection) {
  connection->set_worker_slot(connections_.size());
  connections_.push_back(std::move(connection));
  connection_count_.store(connections_.size(), std::memory_order_relaxed);
}

void Worker::remove(WsConnection& connection) {
  const std::size_t slot = connection.worker_slot();
  if (slot >= connections_.size() || connections_[slot].get() != &connection) return;
  if (slot + 1 != connections_.size()) {
    connections_[slot] = std::move(connections_.back());
    connections_[slot]->set_worker_slot(slot);
  }
  connections_.pop_back();
  connection_count_.store(connections_.size(), std::memory_order_relaxed);
}

void Worker::mark_dirty(WsConnection& connection) {
  const std::uint64_t key = connection.flush_group();
  auto [it, added] = dirty_index_.try_emplace(key, dirty_.size());
  if (added) {
    dirty_.push_back(DirtyGroup{key, std::move(spare_queue_), 0});
    spare_queue_.clear();
    if (running_input_) new_groups_.push_back(key);
  }
  dirty_[it->second].queue.push_back(connection.shared_from_this());
  if (!flush_scheduled_) post_flush();
}

bool Worker::take_dirty(std::size_t index, std::size_t room) {
  DirtyGroup& group = dirty_[index];
  const std::size_t end = std::min(group.queue.size(), group.head + room);
  for (std::size_t i = group.head; i < end; ++i) flushing_.push_back(std::move(group.queue[i]));
  group.head = end;
  if (group.head < group.queue.size()) {
    if (group.head > 4 * kFlushBatch && group.head * 2 > group.queue.size()) {
      group.queue.erase(group.queue.begin(),
                        group.queue.begin() + static_cast<std::ptrdiff_t>(group.head));
      group.head = 0;
    }
    return true;
  }
  dirty_index_.erase(group.key);
  group.queue.clear();
  if (spare_queue_.capacity() < group.queue.capacity()) spare_queue_ = std::move(group.queue);
  if (index + 1 != dirty_.size()) {
    dirty_[index] = std::move(dirty_.back());
    dirty_index_[dirty_[index].key] = index;
  }
  dirty_.pop_back();
  return false;
}

void Worker::post_flush() {
  flush_scheduled_ = true;
  boost::asio::post(io_, [this] { flush_dirty(); });
}

void Worker::post_after_poll(void (Worker::*handler)()) {
  // A post from a handler runs after the reactor's next poll only if it is made after that
  // poll: the first post lands ahead of the poll's completions, the second behind them.
  boost::asio::post(
      io_, [this, handler] { boost::asio::post(io_, [this, handler] { (this->*handler)(); }); });
}

void Worker::count_write(std::size_t frames) {
  const auto it = std::lower_bound(kWriteFrameBounds.begin(), kWriteFrameBounds.end(),
                                   static_cast<double>(frames));
  ++write_counts_[static_cast<std::size_t>(it - kWriteFrameBounds.begin())];
  write_frames_sum_ += frames;
}

void Worker::publish_write_counts() {
  if (write_frames_sum_ == 0) return;
  write_frames_.add(write_counts_, static_cast<double>(write_frames_sum_));
  write_counts_.fill(0);
  write_frames_sum_ = 0;
}

void Worker::open_send_ring() {
  if (!io_uring_) return;
  std::string error;
  ring_ = SendRing::open(error);
  if (index_ != 0) return;  // one line for the node, not one per worker
  if (ring_) {
    log::info("server", "writing with io_uring", {});
  } else {
    log::info("server", "io_uring unavailable; writing with sendmsg", {{"reason", error}});
  }
}

void Worker::post_input(std::function<void()> input) {
  input_queued_.fetch_add(1, std::memory_order_relaxed);
  boost::asio::post(io_, [this, input = std::move(input)] {
    input_queued_.fetch_sub(1, std::memory_order_relaxed);
    running_input_ = true;
    input();
    running_input_ = false;
    if (!new_groups_.empty() && input_queued_.load(std::memory_order_relaxed) <= kBehindInputs) {
      flush_new_groups();
    }
    new_groups_.clear();
  });
}

void Worker::flush_new_groups() {
  // By index: a write may turn a connection dirty again and add a group.
  const std::size_t count = new_groups_.size();
  for (std::size_t i = 0; i < count; ++i) {
    const auto it = dirty_index_.find(new_groups_[i]);
    if (it == dirty_index_.end()) continue;
    const DirtyGroup& group = dirty_[it->second];
    if (group.queue.size() - group.head > kPromptFlushMax) continue;
    take_dirty(it->second, kPromptFlushMax);
    write_flushing();
  }
  publish_write_counts();
}

void Worker::flush_dirty() {
  flush_scheduled_ = false;
  // Input posted to this worker (broker deliveries) that is queued behind this handler goes
  // first: its fan-out joins the queues (an org with nothing queued gets its turn in the next
  // batch, not after this slice), and a connection already queued sends that event in the same
  // write. Once per slice, so a stream of input can delay the writes but never stop them.
  if (!flush_deferred_ && input_queued_.load(std::memory_order_relaxed) > 0) {
    flush_deferred_ = true;
    post_flush();
    return;
  }
  flush_deferred_ = false;
  const auto deadline = std::chrono::steady_clock::now() + kSlice;
  do {
    flush_batch();
  } while (!dirty_.empty() && std::chrono::steady_clock::now() < deadline);
  publish_write_counts();
  // Yield: the rest runs after what became ready meanwhile, which may add to their queues.
  if (!dirty_.empty() && !flush_scheduled_) {
    flush_scheduled_ = true;
    post_after_poll(&Worker::flush_dirty);
  }
}

void Worker::flush_batch() {
  // Each group's oldest requests first, the groups round robin with an equal share of the batch
  // each (what a group does not need goes to the others). Connections marked dirty while this
  // batch runs (a write finished and more was queued) join the back of their group's queue.
  std::size_t room = kFlushBatch;
  while (room > 0 && !dirty_.empty()) {
    const std::size_t share = std::max<std::size_t>(1, room / dirty_.size());
    for (std::size_t visits = dirty_.size(); visits > 0 && room > 0 && !dirty_.empty(); --visits) {
      if (dirty_next_ >= dirty_.size()) dirty_next_ = 0;
      const std::size_t before = flushing_.size();
      const bool left = take_dirty(dirty_next_, std::min(share, room));
      room -= flushing_.size() - before;
      if (left) ++dirty_next_;
    }
  }
  write_flushing();
}

void Worker::write_flushing() {
  std::size_t next = 0;
  while (ring_ && next < flushing_.size()) {
    while (next < flushing_.size() &&
           flushing_[next]->flush_into(*ring_, static_cast<std::uint32_t>(next))) {
      ++next;
    }
    for (const auto& sent : ring_->submit()) flushing_[sent.tag]->on_sent(sent.result);
    if (ring_->broken()) {
      log::error("server", "io_uring failed; writing with sendmsg from now on",
                 {{"worker", index_}});
      ring_.reset();
    }
  }
  for (; next < flushing_.size(); ++next) flushing_[next]->flush();
  flushing_.clear();
}

void Worker::close_all(std::uint16_t code) {
  // Backwards, because a connection may remove itself (swap-remove) during the call.
  for (std::size_t i = connections_.size(); i-- > 0;) {
    if (i >= connections_.size()) continue;
    auto connection = connections_[i];
    connection->shut_down(code);
  }
}

void Worker::drain_until(std::chrono::steady_clock::time_point deadline) {
  drain_deadline_ = deadline;
  drain_last_step_ = std::chrono::steady_clock::now();
  drain_credit_ = 0;
}

void Worker::drain_step(std::chrono::steady_clock::time_point now) {
  // Each step closes the share of the still-open connections that the time since the last step is
  // of the time that was left then: at most ceil(n_at_start * tick / period) per tick while ticks
  // come on time. The fraction of a close a step can't make is carried over, so a few connections
  // over a long period close at the right times rather than one per tick from the start. A
  // late tick closes proportionally more instead of leaving a burst for the deadline, and
  // clients that leave by themselves slow the pace down.
  const auto span = std::chrono::duration<double>(*drain_deadline_ - drain_last_step_);
  const auto elapsed = std::chrono::duration<double>(now - drain_last_step_);
  drain_last_step_ = now;
  std::size_t open = 0;
  for (const auto& c : connections_) open += c->open() && c->leaves_on_drain() ? 1 : 0;
  if (open == 0) return;
  std::size_t share = open;
  if (elapsed < span) {
    drain_credit_ += static_cast<double>(open) * (elapsed / span);
    share = std::min(open, static_cast<std::size_t>(std::floor(drain_credit_ + 1e-9)));
  }
  drain_credit_ = std::max(0.0, drain_credit_ - static_cast<double>(share));
  for (std::size_t i = connections_.size(); i-- > 0 && share > 0;) {
    if (i >= connections_.size()) continue;
    auto connection = connections_[i];
    if (!connection->open() || !connection->leaves_on_drain()) continue;
    connection->close(ws::close_code::kGoingAway, "server shutting down");
    --share;
  }
}

void Worker::schedule_tick() {
  tick_.expires_after(kTick);
  tick_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    publish_write_counts();  // writes finished outside a flush (the socket became writable)
    tick_now_ = std::chrono::steady_clock::now();
    tick_wall_ = std::chrono::system_clock::now();
    tick_next_ = connections_.size();
    tick_slice();
  });
}

void Worker::tick_slice() {
  // Backwards, because a connection may remove itself (swap-remove) during its tick; one that
  // another's removal moves behind the cursor waits for the next tick.
  const auto deadline = std::chrono::steady_clock::now() + kSlice;
  for (std::size_t ticked = 1; tick_next_ > 0; ++ticked) {
    const std::size_t i = --tick_next_;
    if (i >= connections_.size()) continue;
    auto connection = connections_[i];
    connection->tick(tick_now_, tick_wall_);
    if (ticked % 64 == 0 && tick_next_ > 0 && std::chrono::steady_clock::now() >= deadline) {
      post_after_poll(&Worker::tick_slice);
      return;
    }
  }
  if (drain_deadline_) drain_step(tick_now_);
  schedule_tick();
}

}  // namespace sg::net
