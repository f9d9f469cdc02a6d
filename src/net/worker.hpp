// net: the connection core, which knows no endpoint. Workers (this file) run the connections;
// an HttpSession (http_session.hpp) serves HTTP/1.1 through the route table the server fills
// (http_routes.hpp); a WebSocket endpoint subclasses WsConnection (ws_connection.hpp), which
// speaks RFC 6455 (ws_codec.hpp) and writes through the outbox and the worker's flush.
//
// Worker: one thread running one io_context, owning the WebSocket connections accepted onto
// it, whatever their endpoint. Nothing here is touched from another thread except through
// post(). Also the per-worker machinery that keeps connections cheap: one scratch read buffer
// shared by all of them, one timer that ticks every connection's deadlines, and the flush that
// writes what connections queued: one gather write per connection, handed to the kernel in
// io_uring batches, in slices of a fixed time that take turns with new input, so a worker that
// falls behind sends more frames per write instead of more writes, and an org with a few
// connections to write waits for one slice of another org's thousands, not all of them (a few
// connections an input turns dirty are written before that input's handler returns). Endpoints
// find their own per-worker state by index().
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

namespace sg::metrics {
class Histogram;
class Registry;
}  // namespace sg::metrics

namespace sg::net {

class SendRing;
class WsConnection;

class Worker {
 public:
  // `io_uring`: write with io_uring where the kernel allows (else sendmsg).
  Worker(std::size_t index, bool io_uring, metrics::Registry& registry);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  boost::asio::io_context& io() { return io_; }
  std::size_t index() const { return index_; }

  void start();  // spawns the thread
  void stop();   // stops the io_context; from any thread
  void join();

  // Valid until the calling handler returns; shared by every connection of this worker.
  std::span<char> scratch() { return scratch_; }

  void add(std::shared_ptr<WsConnection> connection);
  void remove(WsConnection& connection);
  // Queues connection.flush() (once until it runs). Flushes run in the order asked, behind the
  // input already waiting on this worker, a batch at a time (see flush_dirty).
  void mark_dirty(WsConnection& connection);
  // Runs `input` on this worker's thread, in the order posted (from any thread). A flush that
  // finds input queued lets it run first: use it for what adds to the connections' queues.
  void post_input(std::function<void()> input);
  // Counts one write that completed `frames` frames (streamgate_write_frames).
  void count_write(std::size_t frames);
  // Shuts every connection down with `code` (server shutdown). On this worker's thread.
  void close_all(std::uint16_t code);
  // Starts the drain: from the next tick on, closes the open connections that leave on a drain
  // with 1001 a share at a time, evenly until `deadline`, the last share on the last tick
  // before it. On this worker's thread.
  void drain_until(std::chrono::steady_clock::time_point deadline);
  std::size_t connections() const { return connection_count_.load(std::memory_order_relaxed); }

 private:
  void schedule_tick();
  // Ticks connections from tick_next_ down for one slice, then yields; the next tick is armed
  // once every connection had this one.
  void tick_slice();
  void drain_step(std::chrono::steady_clock::time_point now);
  void flush_dirty();
  void flush_batch();     // one ring submission's worth of connections, round robin by group
  void write_flushing();  // writes and clears flushing_
  // Writes the small groups the last input turned dirty (see kPromptFlushMax).
  void flush_new_groups();
  void post_flush();
  // Runs `handler` once the reactor has polled and what it found has run.
  void post_after_poll(void (Worker::*handler)());
  // Moves up to `room` connections of dirty_[index] into flushing_; false: the group is now
  // empty and was removed (dirty_[index] is another group, or past the end).
  bool take_dirty(std::size_t index, std::size_t room);
  void publish_write_counts();
  void open_send_ring();

  // Bounds of streamgate_write_frames; counts are kept here and added to the shared histogram
  // once per flush batch rather than once per write.
  static constexpr std::array<double, 9> kWriteFrameBounds = {1, 2, 4, 8, 16, 32, 64, 128, 256};

  std::size_t index_;
  bool io_uring_;
  // No concurrency hint of 1: with it, Asio queues a post made from the worker's own thread in a
  // thread-private queue that runs after posts other threads made later, and the hub relies on
  // posts to a worker running in the order they were made (a channel's events arrive in offset
  // order; an older one arriving late would be dropped as stale).
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_;
  boost::asio::steady_timer tick_;
  std::thread thread_;
  std::vector<char> scratch_;
  std::vector<std::shared_ptr<WsConnection>> connections_;
  std::atomic<std::size_t> connection_count_{0};
  // Connections waiting for their flush, grouped by WsConnection::flush_group() (the org, for
  // the stream), each group oldest first from its head; each connection at most once (its own
  // dirty flag), so one fanned out to again before its turn sends everything in one write. A
  // batch takes from the groups round robin: one org's burst to thousands of connections does
  // not make another org's connection wait behind all of them.
  struct DirtyGroup {
    std::uint64_t key = 0;
    std::vector<std::shared_ptr<WsConnection>> queue;
    std::size_t head = 0;
  };
  std::vector<DirtyGroup> dirty_;
  std::unordered_map<std::uint64_t, std::size_t> dirty_index_;  // group key → index in dirty_
  std::size_t dirty_next_ = 0;  // the group the next batch starts with
  // A drained group's queue, kept for the next group so light load allocates nothing per flush.
  std::vector<std::shared_ptr<WsConnection>> spare_queue_;
  std::vector<std::shared_ptr<WsConnection>> flushing_;  // the batch being flushed
  bool running_input_ = false;                           // a post_input() handler is running
  std::vector<std::uint64_t> new_groups_;  // groups added to dirty_ by the running input
  std::unique_ptr<SendRing> ring_;         // null: --io-uring off, unavailable, or failed
  bool flush_scheduled_ = false;
  bool flush_deferred_ = false;  // the scheduled flush already let queued input go first
  std::atomic<std::size_t> input_queued_{0};  // post_input() calls not yet run
  metrics::Histogram& write_frames_;
  std::array<std::uint64_t, kWriteFrameBounds.size() + 1> write_counts_{};
  std::uint64_t write_frames_sum_ = 0;
  // The drain (drain_until): its deadline (set: draining), when the last step ran, and the
  // fraction of a close owed but not yet made.
  std::optional<std::chrono::steady_clock::time_point> drain_deadline_;
  std::chrono::steady_clock::time_point drain_last_step_;
  double drain_credit_ = 0;
  // The tick under way: its clocks and the next connection it ticks (counting down to 0).
  std::chrono::steady_clock::time_point tick_now_;
  std::chrono::system_clock::time_point tick_wall_;
  std::size_t tick_next_ = 0;
};

}  // namespace sg::net
