// streamgate-bench: a WebSocket load generator for streamgate and the servers users would pick
// instead (a Node.js `ws` broadcast server, nats-server's WebSocket listener). One process runs
// one scenario on one io_context thread; bench/run.sh runs several processes when one process's
// file limit is not enough. Everything here is used from that one thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <cstdint>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sgb {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// CLOCK_MONOTONIC is one clock for every process on the machine, so a publish time written by
// one process can be subtracted from a receipt time read by another.
inline std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// Log-linear histogram in the manner of HdrHistogram: every power of two is split into 64
// buckets, so a recorded value is known to within 1/64 (1.6 %) at any magnitude, in a fixed
// 30 KiB table with no allocation per sample.
class Histogram {
 public:
  static constexpr int kSubBits = 6;
  static constexpr std::size_t kSub = std::size_t{1} << kSubBits;
  static constexpr std::size_t kBuckets = (64 - kSubBits) * kSub + 2 * kSub;

  void record(std::uint64_t v) {
    ++counts_[index(v)];
    ++count_;
    if (v > max_) max_ = v;
  }
  void merge(const Histogram& o);
  std::uint64_t count() const { return count_; }
  std::uint64_t max() const { return max_; }
  // The smallest recorded value v such that a fraction q of samples is <= v (to bucket
  // precision; the bucket's upper edge is reported, never below the truth).
  std::uint64_t percentile(double q) const;

  static std::size_t index(std::uint64_t v);
  static std::uint64_t upper_edge(std::size_t index);

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

enum class Peer { kStreamgate, kNodeWs, kNats };
enum class Scenario { kIdle, kFanout, kTenants, kChurn, kPublish };

struct Options {
  Scenario scenario = Scenario::kFanout;
  Peer peer = Peer::kStreamgate;
  std::string host = "127.0.0.1";
  std::uint16_t port = 4000;       // WebSocket (and, for streamgate and node, HTTP publish)
  std::uint16_t publish_port = 0;  // 0 = port; nats: the NATS TCP port
  std::string path = "/v2/realtime/stream";
  std::string secret;        // HS256 secret the tokens are signed with
  std::string api_key;       // Bearer key for publish and metrics
  bool auth_header = false;  // token in Authorization: Bearer instead of the query
  std::size_t connections = 1000;
  std::size_t users_per_org = 0;  // 0 = scenario default
  std::size_t services = 1;       // services per org; each connection takes all of them
  std::uint64_t org_base = 1000;
  double rate = 20;  // events per second, all channels together
  // Several rates: publish phases one after another on the same connections, one report each;
  // stops after the first phase that loses events or has p99 over a second.
  std::vector<double> rates;
  std::size_t batch = 100;        // most events in one publish request (1 = one per request)
  std::size_t producers = 64;     // publish: keep-alive connections, one request in flight each
  std::size_t payload = 128;      // bytes of each event's data object
  double duration = 10;           // seconds of publishing (churn: of cycling)
  double warmup = 1;              // seconds of publishing left out of the latency figures
  double drain = 10;              // most seconds to wait for the tail after publishing
  std::size_t concurrency = 200;  // connects in flight (churn: clients cycling)
  double connect_rate = 0;        // most connects started per second; 0 = no pacing
  double settle = 1;              // idle: seconds between the last ack and reading RSS
  double hold = 0;                // idle: keep connections open this long (or to SIGTERM)
  // idle: end the hold once every connection has this many events per service, published by
  // another process (bench/cluster-100k.sh), and report their delivery; 0 = just hold.
  std::uint64_t expect_events = 0;
  int server_pid = 0;          // read RSS and CPU time of this process
  std::size_t proc_index = 0;  // this generator among several (users, source addresses)
  std::string label;           // free text copied into the JSON line
  bool strict = false;         // exit 1 on any failed connect, lost event or error
};

bool parse_options(int argc, char** argv, Options& o, std::string& error);
std::string_view to_string(Peer p);
std::string_view to_string(Scenario s);

// Everything the connections and the publisher count, read once at the end.
struct Stats {
  std::size_t connect_started = 0;
  std::size_t acked = 0;           // handshakes answered (subscribed)
  std::size_t connect_failed = 0;  // TCP refused / reset before the ack
  std::size_t http_rejected = 0;   // upgrade answered with something other than 101
  std::map<int, std::size_t> http_status;
  std::size_t closed_by_server = 0;  // close frame or EOF from the server after the ack
  std::map<int, std::size_t> close_codes;
  std::size_t error_frames = 0;  // {"type":"error"} frames
  std::string first_error;
  Histogram connect_latency;  // TCP connect start → ack

  std::uint64_t received = 0;    // event frames, duplicates included
  std::uint64_t duplicates = 0;  // per-channel sequence not above the last one seen
  std::uint64_t gaps = 0;        // events skipped inside a connection's stream
  std::uint64_t seq_gaps = 0;    // streamgate: per-connection seq not last + 1
  std::uint64_t bad_frames = 0;  // event frames the generator couldn't parse
  std::uint64_t first_recv_ns = 0;
  std::uint64_t last_recv_ns = 0;
  Histogram latency;  // publish send → receipt, events after warm-up

  std::uint64_t published = 0;  // accepted by the server (HTTP 200, or written to NATS)
  std::uint64_t publish_requests = 0;
  std::uint64_t publish_errors = 0;
  std::string first_publish_error;
  std::uint64_t first_send_ns = 0;
  std::uint64_t last_send_ns = 0;
  Histogram request_latency;            // publish: request sent → answer, after warm-up
  std::uint64_t measured_requests = 0;  // publish: answered requests sent after warm-up

  // Clears what one publishing phase counts, so the next phase reports on its own.
  void reset_delivery() {
    received = duplicates = gaps = seq_gaps = bad_frames = 0;
    first_recv_ns = last_recv_ns = 0;
    latency = Histogram{};
    published = publish_requests = publish_errors = 0;
    first_publish_error.clear();
    first_send_ns = last_send_ns = 0;
  }

  std::size_t cycles = 0;   // churn: connect → ack → close completed
  std::size_t resumed = 0;  // churn: acks reporting "recovered":true
};

class Bench;

// One client WebSocket: TCP connect from a spread source address, HTTP upgrade, the peer's
// subscribe exchange, then events until closed. Reused for the next cycle in churn.
class WsConn {
 public:
  WsConn(Bench& bench, std::size_t index);
  WsConn(const WsConn&) = delete;
  WsConn& operator=(const WsConn&) = delete;

  void start();             // opens a new connection
  void close_gracefully();  // sends a close frame; the server's answer ends the connection
  void drop();              // closes the socket now
  bool acked() const { return state_ == State::kOpen; }
  bool closed() const { return state_ == State::kClosed; }
  std::size_t index() const { return index_; }
  // Per service (of this connection's org): events received without duplicates.
  const std::vector<std::uint64_t>& received() const { return received_; }

 private:
  enum class State { kIdle, kConnecting, kUpgrading, kSubscribing, kOpen, kClosing, kClosed };

  void on_connect(const boost::system::error_code& ec);
  void do_read();
  void on_readable(const boost::system::error_code& ec);
  void on_bytes(const char* data, std::size_t n, std::uint64_t now);
  bool on_upgrade_response(std::uint64_t now);
  std::size_t on_frames(const char* data, std::size_t n, std::uint64_t now);
  void on_message(std::string_view payload, std::uint64_t now);
  void on_json(std::string_view text, std::uint64_t now);
  void on_nats(std::string_view bytes, std::uint64_t now);
  void on_event(std::size_t service, std::uint64_t c, std::uint64_t t, std::uint64_t now);
  void on_ack(std::uint64_t now, bool recovered);
  void send_subscribe();
  void send_frame(std::uint8_t opcode, std::string_view payload);
  void send_raw(std::string bytes);
  void do_write();
  void finish(bool by_server, int code);

  Bench& bench_;
  std::size_t index_;
  tcp::socket socket_;
  State state_ = State::kIdle;
  bool reading_ = false;
  bool writing_ = false;
  std::uint64_t started_ns_ = 0;
  std::string rx_;       // bytes of an incomplete frame (or upgrade response) between reads
  std::string message_;  // a fragmented message being reassembled
  std::string nats_;     // NATS protocol bytes not yet parsed (they span frames)
  std::string out_;      // bytes the socket didn't take yet
  std::uint64_t last_seq_ = 0;
  std::vector<std::uint64_t> last_c_;    // per service: last channel sequence seen
  std::vector<std::uint64_t> received_;  // per service
  std::uint32_t mask_state_;
  std::uint64_t generation_ =
      0;                  // handlers of an earlier connection of this object ignore themselves
  bool counted_ = false;  // its failure is already in the stats
};

// Sends events at the configured rate: streamgate and node through HTTP POST batches on one
// keep-alive connection, nats through PUB commands on its TCP port. Each event's data carries
// its send time (t, monotonic ns), its sequence in its channel (c) and a global index (i).
class Publisher {
 public:
  Publisher(Bench& bench, double rate);
  void start(std::uint64_t start_ns, std::uint64_t end_ns);
  bool done() const;  // every event sent and answered

 private:
  void connect();
  void on_connect(const boost::system::error_code& ec);
  void pump();
  void arm_timer(std::uint64_t due_ns);
  void do_write();
  void do_read();
  void on_read(const boost::system::error_code& ec, std::size_t n);
  void on_response(int status, std::string_view body);
  void fail(const std::string& why);

  Bench& bench_;
  double rate_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  std::array<char, 65536> buf_;
  std::string rx_;
  std::string body_;                   // bytes waiting to be written after request_
  std::string request_;                // bytes being written
  std::vector<std::size_t> channels_;  // channel of each event in the outstanding request
  bool writing_ = false;
  std::uint64_t start_ns_ = 0;
  std::uint64_t end_ns_ = 0;
  std::uint64_t sent_ = 0;     // events sent
  std::size_t in_flight_ = 0;  // events in the request awaiting its response
  bool connected_ = false;
  bool failed_ = false;
  bool timer_armed_ = false;
  std::uint64_t total_ = 0;  // events due over the whole run
};

// The publish scenario's client: one keep-alive connection, one event per request, the next
// request as soon as the answer arrives, until end_ns.
class Producer {
 public:
  Producer(Bench& bench, std::size_t index);
  void start(std::uint64_t end_ns);
  bool done() const { return done_; }

 private:
  void send_next();
  void do_read();
  void on_read(const boost::system::error_code& ec, std::size_t n);
  void on_response(int status);
  void fail(const std::string& why);

  Bench& bench_;
  std::size_t index_;
  tcp::socket socket_;
  std::array<char, 4096> buf_;
  std::string rx_;
  std::string request_;
  std::uint64_t end_ns_ = 0;
  std::uint64_t sent_ns_ = 0;
  bool done_ = false;
};

class Bench {
 public:
  explicit Bench(Options options);
  int run();

  asio::io_context& io() { return io_; }
  const Options& options() const { return opts_; }
  Stats& stats() { return stats_; }

  // Connection i's identity: org (absolute id), user, and source address.
  std::uint64_t org_of(std::size_t conn) const { return opts_.org_base + conn / users_per_org_; }
  std::size_t channel_of(std::size_t conn, std::size_t service) const {
    return conn / users_per_org_ * opts_.services + service;
  }
  std::size_t channels() const { return channels_; }
  const std::string& token(std::size_t conn) const { return tokens_[conn]; }
  tcp::endpoint source(std::size_t conn) const;
  const std::string& resume_id() const { return resume_id_; }
  std::uint64_t measure_from_ns() const { return measure_from_ns_; }
  bool stopping() const { return stop_; }
  // Shared by every connection's reads: valid until the reading handler returns.
  char* scratch() { return scratch_.data(); }
  std::size_t scratch_size() const { return scratch_.size(); }

  // Publisher side: the next event for the channel round robin.
  std::uint64_t next_channel_seq(std::size_t channel) { return ++published_seq_[channel]; }
  void count_published(std::size_t channel, std::uint64_t n) { accepted_[channel] += n; }

  // From WsConn.
  void on_acked(WsConn& conn);
  void on_closed(WsConn& conn, bool was_acked);

 private:
  void premint();
  void connect_phase(std::size_t target);
  void launch_more();
  void run_until(std::uint64_t deadline_ns, const std::function<bool()>& done);
  void read_metrics(std::int64_t& active, std::int64_t& subscriptions);
  void fetch_resume_id();
  int report();
  // publish: requests/s and latency of the producers, deliveries to the subscribers; one JSON line.
  int run_publish();
  int report_publish(double window_s, std::uint64_t lost);
  // idle with --expect-events: connections that got every event, loss, latency; one JSON line.
  int report_delivery();
  bool step_failed() const;

  Options opts_;
  asio::io_context io_{1};
  asio::steady_timer pace_;
  Stats stats_;
  std::size_t users_per_org_ = 1;
  std::size_t channels_ = 1;
  std::vector<std::string> tokens_;
  std::vector<std::unique_ptr<WsConn>> conns_;
  std::size_t launched_ = 0;
  std::size_t target_ = 0;
  std::size_t in_flight_ = 0;
  std::uint64_t phase_start_ns_ = 0;
  bool cycling_ = false;  // churn: restart a connection once it closes
  std::uint64_t cycle_end_ns_ = 0;
  std::uint64_t measure_from_ns_ = 0;
  std::vector<std::uint64_t> published_seq_;
  std::vector<std::uint64_t> accepted_;
  std::string resume_id_;
  std::vector<std::unique_ptr<Publisher>> publishers_;  // kept: their handlers may be queued
  std::vector<std::unique_ptr<Producer>> producers_;
  Publisher* publisher_ = nullptr;
  double step_rate_ = 0;
  std::size_t step_ = 0;
  std::uint64_t base_expected_ = 0;
  std::uint64_t base_unique_ = 0;
  std::uint64_t step_lost_ = 0;
  std::uint64_t base_closed_ = 0;
  bool stop_ = false;  // SIGINT / SIGTERM
  std::int64_t rss_before_ = -1;
  std::int64_t rss_after_ = -1;
  std::int64_t rss_peak_ = -1;
  std::int64_t active_ = -1;
  std::int64_t subscriptions_ = -1;
  double connect_seconds_ = 0;
  double connect_cpu_server_ = 0;
  double connect_cpu_gen_ = 0;
  double window_s_ = 0;
  double gen_cpu_ = 0;
  double server_cpu_ = -1;
  std::uint64_t lost_on_close_ = 0;         // events closed connections never got
  std::vector<std::uint64_t> subscribers_;  // per channel: connections that were acked
  std::vector<char> scratch_;
  std::map<std::string, std::string> extra_;  // scenario figures for the report, JSON values
  std::uint64_t unique_received() const { return stats_.received - stats_.duplicates; }
  std::uint64_t expected() const;
};

}  // namespace sgb
