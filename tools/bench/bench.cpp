#include "bench.hpp"

#include "auth/auth.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

namespace sgb {

// ---- histogram ----

std::size_t Histogram::index(std::uint64_t v) {
  if (v < 2 * kSub) return static_cast<std::size_t>(v);
  const int msb = 63 - __builtin_clzll(v);
  const int shift = msb - kSubBits;
  return static_cast<std::size_t>(shift) * kSub + static_cast<std::size_t>(v >> shift);
}

std::uint64_t Histogram::upper_edge(std::size_t i) {
  if (i < 2 * kSub) return i;
  const std::size_t shift = i / kSub - 1;
  const std::uint64_t sub = i % kSub + kSub;
  return ((sub + 1) << shift) - 1;
}

void Histogram::merge(const Histogram& o) {
  for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
  count_ += o.count_;
  max_ = std::max(max_, o.max_);
}

std::uint64_t Histogram::percentile(double q) const {
  if (count_ == 0) return 0;
  const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= std::max<std::uint64_t>(rank, 1)) return std::min(upper_edge(i), max_);
  }
  return max_;
}

// ---- /proc and blocking HTTP helpers (outside the timed phases) ----

namespace {

std::int64_t rss_kib(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmRSS:")) return std::stoll(line.substr(6));
  }
  return -1;
}

// utime + stime of a process in seconds; -1 when unreadable.
double cpu_seconds(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = all.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(all.substr(close + 2));
  std::string f;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int i = 3; fields >> f; ++i) {
    if (i == 14) utime = std::stoull(f);
    if (i == 15) {
      stime = std::stoull(f);
      break;
    }
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double self_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

struct HttpResult {
  int status = 0;
  std::string body;
};

HttpResult http_blocking(const std::string& host, std::uint16_t port, const std::string& method,
                         const std::string& path, const std::string& api_key,
                         const std::string& body) {
  HttpResult r;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return r;
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return r;
  }
  std::string req =
      method + " " + path + " HTTP/1.1\r\nHost: " + host +
      "\r\nConnection: close\r\nAuthorization: Bearer " + api_key +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  std::size_t off = 0;
  while (off < req.size()) {
    const ssize_t n = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  std::string resp;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    resp.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (resp.size() > 12) std::from_chars(resp.data() + 9, resp.data() + 12, r.status);
  const auto end = resp.find("\r\n\r\n");
  if (end != std::string::npos) r.body = resp.substr(end + 4);
  return r;
}

std::int64_t json_int(const std::string& text, const std::string& key) {
  const auto p = text.find("\"" + key + "\":");
  if (p == std::string::npos) return -1;
  std::int64_t v = -1;
  std::from_chars(text.data() + p + key.size() + 3, text.data() + text.size(), v);
  return v;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      out += ' ';
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

double ms(std::uint64_t ns) {
  return static_cast<double>(ns) / 1e6;
}

}  // namespace

// ---- the run ----

Bench::Bench(Options options) : opts_(std::move(options)), pace_(io_), scratch_(256 * 1024) {
  switch (opts_.scenario) {
    case Scenario::kFanout:
    case Scenario::kPublish:
      users_per_org_ = opts_.users_per_org ? opts_.users_per_org : opts_.connections;
      break;
    case Scenario::kTenants:
      users_per_org_ = opts_.users_per_org ? opts_.users_per_org : 10;
      break;
    case Scenario::kIdle:
      users_per_org_ = opts_.users_per_org ? opts_.users_per_org : 10;
      break;
    case Scenario::kChurn:
      // One org: every client resumes from the event published on its channel.
      users_per_org_ = opts_.users_per_org ? opts_.users_per_org : opts_.connections;
      break;
  }
  users_per_org_ = std::max<std::size_t>(users_per_org_, 1);
  const std::size_t orgs = (opts_.connections + users_per_org_ - 1) / users_per_org_;
  channels_ = std::max<std::size_t>(orgs * opts_.services, 1);
  published_seq_.assign(channels_, 0);
  accepted_.assign(channels_, 0);
  subscribers_.assign(channels_, 0);
}

tcp::endpoint Bench::source(std::size_t conn) const {
  // 127.0.0.2 … 127.0.0.254: 253 addresses, each with its own ephemeral port range.
  const std::size_t k = (opts_.proc_index * 7919 + conn) % 253;
  const asio::ip::address_v4 addr(static_cast<std::uint32_t>(0x7F000002 + k));
  return tcp::endpoint(addr, 0);
}

void Bench::premint() {
  tokens_.resize(opts_.connections);
  if (opts_.peer == Peer::kNats) return;
  const auto exp = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count() +
                   4 * 3600;
  for (std::size_t i = 0; i < opts_.connections; ++i) {
    const std::string claims = R"({"sub":"bench-)" + std::to_string(opts_.proc_index) + "-" +
                               std::to_string(i) + R"(","org_id":)" + std::to_string(org_of(i)) +
                               R"(,"exp":)" + std::to_string(exp) + "}";
    tokens_[i] = sg::auth::mint_hs256(claims, opts_.secret);
  }
}

void Bench::on_acked(WsConn& conn) {
  for (std::size_t s = 0; s < opts_.services; ++s) ++subscribers_[channel_of(conn.index(), s)];
  if (cycling_) {
    conn.close_gracefully();
    return;
  }
  --in_flight_;
  launch_more();
}

void Bench::on_closed(WsConn& conn, bool was_acked) {
  if (was_acked) {
    // Its channels lose a subscriber for everything published from now on; what it missed
    // until now still counts as lost.
    for (std::size_t s = 0; s < opts_.services; ++s) {
      const std::size_t ch = channel_of(conn.index(), s);
      --subscribers_[ch];
      lost_on_close_ += accepted_[ch] - std::min(accepted_[ch], conn.received()[s]);
    }
  }
  if (cycling_) {
    if (was_acked && now_ns() <= cycle_end_ns_) ++stats_.cycles;
    if (now_ns() < cycle_end_ns_) {
      asio::post(io_, [&conn] { conn.start(); });
    }
    return;
  }
  if (!was_acked) {
    --in_flight_;
    launch_more();
  }
}

void Bench::launch_more() {
  const std::uint64_t now = now_ns();
  while (in_flight_ < opts_.concurrency && launched_ < target_) {
    if (opts_.connect_rate > 0) {
      const double allowed =
          static_cast<double>(now - phase_start_ns_) / 1e9 * opts_.connect_rate + 1;
      if (static_cast<double>(launched_) >= allowed) {
        pace_.expires_after(std::chrono::milliseconds(1));
        pace_.async_wait([this](const boost::system::error_code& ec) {
          if (!ec) launch_more();
        });
        return;
      }
    }
    ++in_flight_;
    conns_[launched_++]->start();
  }
}

void Bench::run_until(std::uint64_t deadline_ns, const std::function<bool()>& done) {
  while (!done() && now_ns() < deadline_ns && !stop_) {
    io_.run_for(std::chrono::milliseconds(5));
  }
}

void Bench::connect_phase(std::size_t target) {
  target_ = target;
  launched_ = 0;
  in_flight_ = 0;
  phase_start_ns_ = now_ns();
  launch_more();
  const std::uint64_t limit = phase_start_ns_ + 60'000'000'000ULL + target * 2'000'000ULL;
  run_until(limit,
            [&] { return stats_.acked + stats_.connect_failed + stats_.http_rejected >= target_; });
  std::uint64_t last = now_ns();
  connect_seconds_ = static_cast<double>(last - phase_start_ns_) / 1e9;
}

void Bench::read_metrics(std::int64_t& active, std::int64_t& subscriptions) {
  active = subscriptions = -1;
  if (opts_.peer != Peer::kStreamgate) return;
  const auto r = http_blocking(opts_.host, opts_.publish_port ? opts_.publish_port : opts_.port,
                               "GET", "/v2/realtime/metrics", opts_.api_key, "");
  if (r.status != 200) return;
  active = json_int(r.body, "activeConnections");
  subscriptions = json_int(r.body, "totalSubscriptions");
}

void Bench::fetch_resume_id() {
  if (opts_.peer != Peer::kStreamgate) return;
  const std::string body = R"({"orgId":)" + std::to_string(org_of(0)) +
                           R"(,"service":"s0","event":"bench.resume","data":null})";
  const auto r = http_blocking(opts_.host, opts_.publish_port ? opts_.publish_port : opts_.port,
                               "POST", "/v2/realtime/publish", opts_.api_key, body);
  const auto p = r.body.find(R"("id":")");
  if (r.status == 200 && p != std::string::npos) {
    const auto end = r.body.find('"', p + 6);
    resume_id_ = r.body.substr(p + 6, end - p - 6);
  }
}

std::uint64_t Bench::expected() const {
  std::uint64_t total = lost_on_close_;
  for (std::size_t ch = 0; ch < channels_; ++ch) total += accepted_[ch] * subscribers_[ch];
  return total;
}

int Bench::run() {
  asio::signal_set signals(io_, SIGINT, SIGTERM);
  signals.async_wait([this](const boost::system::error_code& ec, int) {
    if (!ec) stop_ = true;
  });
  auto guard = asio::make_work_guard(io_);
  premint();
  rss_before_ = rss_kib(opts_.server_pid);
  for (std::size_t i = 0; i < opts_.connections; ++i) {
    conns_.push_back(std::make_unique<WsConn>(*this, i));
  }
  if (opts_.scenario == Scenario::kPublish) return run_publish();
  const double gen_cpu0 = self_cpu_seconds();
  const double srv_cpu0 = cpu_seconds(opts_.server_pid);
  const std::uint64_t t0 = now_ns();

  if (opts_.scenario == Scenario::kChurn) {
    fetch_resume_id();
    cycling_ = true;
    cycle_end_ns_ = now_ns() + static_cast<std::uint64_t>(opts_.duration * 1e9);
    for (std::size_t i = 0; i < opts_.connections; ++i) conns_[i]->start();
    run_until(cycle_end_ns_ + 5'000'000'000ULL, [&] {
      return now_ns() >= cycle_end_ns_ &&
             std::all_of(conns_.begin(), conns_.end(), [](auto& c) { return c->closed(); });
    });
    window_s_ = opts_.duration;
  } else {
    connect_phase(opts_.connections);
    connect_cpu_server_ = cpu_seconds(opts_.server_pid) - srv_cpu0;
    connect_cpu_gen_ = self_cpu_seconds() - gen_cpu0;
    if (opts_.scenario == Scenario::kIdle) {
      run_until(now_ns() + static_cast<std::uint64_t>(opts_.settle * 1e9), [] { return false; });
      rss_after_ = rss_kib(opts_.server_pid);
      read_metrics(active_, subscriptions_);
    } else {
      read_metrics(active_, subscriptions_);
      rss_after_ = rss_kib(opts_.server_pid);
      std::vector<double> rates = opts_.rates;
      if (rates.empty()) rates.push_back(opts_.rate);
      int rc = 0;
      for (step_ = 0; step_ < rates.size(); ++step_) {
        step_rate_ = rates[step_];
        stats_.reset_delivery();
        base_expected_ = expected();
        base_unique_ = unique_received();
        base_closed_ = stats_.closed_by_server;
        publishers_.push_back(std::make_unique<Publisher>(*this, step_rate_));
        publisher_ = publishers_.back().get();
        const std::uint64_t start = now_ns() + 50'000'000ULL;
        const std::uint64_t end = start + static_cast<std::uint64_t>(opts_.duration * 1e9);
        measure_from_ns_ = start + static_cast<std::uint64_t>(opts_.warmup * 1e9);
        const double g0 = self_cpu_seconds();
        const double s0 = cpu_seconds(opts_.server_pid);
        const std::uint64_t w0 = now_ns();
        publisher_->start(start, end);
        run_until(end, [] { return false; });
        run_until(end + static_cast<std::uint64_t>(opts_.drain * 1e9), [&] {
          return publisher_->done() &&
                 unique_received() - base_unique_ >= expected() - base_expected_;
        });
        window_s_ = static_cast<double>(now_ns() - w0) / 1e9;
        gen_cpu_ = (self_cpu_seconds() - g0) / window_s_;
        server_cpu_ = opts_.server_pid > 0 ? (cpu_seconds(opts_.server_pid) - s0) / window_s_ : -1;
        rss_peak_ = rss_kib(opts_.server_pid);
        rc |= report();
        if (stop_ || step_failed()) break;
        if (step_ + 1 < rates.size()) {
          run_until(now_ns() + 1'000'000'000ULL, [] { return false; });  // let queues drain
        }
      }
      for (auto& c : conns_) c->drop();
      return rc;
    }
  }
  if (opts_.scenario == Scenario::kChurn) {
    const double w = static_cast<double>(now_ns() - t0) / 1e9;
    gen_cpu_ = (self_cpu_seconds() - gen_cpu0) / w;
    server_cpu_ = opts_.server_pid > 0 ? (cpu_seconds(opts_.server_pid) - srv_cpu0) / w : -1;
  }
  const int rc = report();
  if (opts_.scenario == Scenario::kIdle && opts_.hold > 0) {
    std::cout.flush();
    const std::uint64_t want = opts_.expect_events;
    auto all_received = [&] {
      return std::all_of(conns_.begin(), conns_.end(), [&](const auto& c) {
        if (!c->acked()) return true;  // a failed connect is already counted
        const auto& got = c->received();
        return std::all_of(got.begin(), got.end(), [&](std::uint64_t n) { return n >= want; });
      });
    };
    std::uint64_t next_check = 0;
    run_until(now_ns() + static_cast<std::uint64_t>(opts_.hold * 1e9), [&] {
      // A walk over every connection, so at most every 100 ms.
      if (want == 0 || now_ns() < next_check) return false;
      next_check = now_ns() + 100'000'000ULL;
      return all_received();
    });
    if (want > 0) return report_delivery() | rc;
  }
  for (auto& c : conns_) c->drop();
  return rc;
}

int Bench::run_publish() {
  if (opts_.connections > 0) connect_phase(opts_.connections);
  read_metrics(active_, subscriptions_);
  step_rate_ = 0;
  base_expected_ = expected();
  base_unique_ = unique_received();
  base_closed_ = stats_.closed_by_server;
  const std::uint64_t start = now_ns() + 50'000'000ULL;
  const std::uint64_t end = start + static_cast<std::uint64_t>(opts_.duration * 1e9);
  measure_from_ns_ = start + static_cast<std::uint64_t>(opts_.warmup * 1e9);
  for (std::size_t i = 0; i < opts_.producers; ++i) {
    producers_.push_back(std::make_unique<Producer>(*this, i));
  }
  run_until(start, [] { return false; });
  const double g0 = self_cpu_seconds();
  const double s0 = cpu_seconds(opts_.server_pid);
  const std::uint64_t w0 = now_ns();
  for (auto& p : producers_) p->start(end);
  run_until(end, [] { return false; });
  const double window = static_cast<double>(now_ns() - w0) / 1e9;
  gen_cpu_ = (self_cpu_seconds() - g0) / window;
  server_cpu_ = opts_.server_pid > 0 ? (cpu_seconds(opts_.server_pid) - s0) / window : -1;
  const auto all_done = [&] {
    return std::all_of(producers_.begin(), producers_.end(), [](auto& p) { return p->done(); });
  };
  run_until(end + static_cast<std::uint64_t>(opts_.drain * 1e9), [&] {
    return all_done() && unique_received() - base_unique_ >= expected() - base_expected_;
  });
  const std::uint64_t expect = expected() - base_expected_;
  const std::uint64_t unique = unique_received() - base_unique_;
  const int rc = report_publish(static_cast<double>(end - measure_from_ns_) / 1e9,
                                expect > unique ? expect - unique : 0);
  for (auto& c : conns_) c->drop();
  return rc;
}

int Bench::report_publish(double window_s, std::uint64_t lost) {
  const auto& st = stats_;
  const auto& o = opts_;
  const auto& lat = st.request_latency;
  const double rps = window_s > 0 ? static_cast<double>(st.measured_requests) / window_s : 0;
  const auto& dl = st.latency;
  std::cout << "streamgate-bench publish against " << to_string(o.peer)
            << (o.label.empty() ? "" : " (" + o.label + ")") << "\n"
            << "  producers                   " << o.producers
            << " keep-alive connections, one event per request\n"
            << "  subscribers                 " << st.acked << " of " << o.connections << "\n"
            << "  requests/s                  " << fixed(rps, 0) << " (" << st.measured_requests
            << " answered after warm-up, " << st.publish_errors << " errors)\n"
            << "  request p50/p99/max         " << fixed(ms(lat.percentile(0.5)), 2) << " / "
            << fixed(ms(lat.percentile(0.99)), 2) << " / " << fixed(ms(lat.max()), 2) << " ms\n"
            << "  delivery p50/p99, lost      " << fixed(ms(dl.percentile(0.5)), 2) << " / "
            << fixed(ms(dl.percentile(0.99)), 2) << " ms, " << lost << "\n";
  if (server_cpu_ >= 0) {
    std::cout << "  server / generator CPU      " << fixed(server_cpu_ * 100, 0) << " % / "
              << fixed(gen_cpu_ * 100, 0) << " %\n";
  }
  if (!st.first_publish_error.empty()) {
    std::cout << "  first publish error         " << st.first_publish_error << "\n";
  }
  std::cout << "{\"bench\":\"streamgate-bench\",\"scenario\":\"publish\",\"peer\":\""
            << to_string(o.peer) << "\",\"label\":" << json_string(o.label)
            << ",\"producers\":" << o.producers << ",\"connections\":" << o.connections
            << ",\"acked\":" << st.acked << ",\"payload\":" << o.payload
            << ",\"duration\":" << fixed(o.duration, 2) << ",\"window_s\":" << fixed(window_s, 3)
            << ",\"requests\":" << st.publish_requests
            << ",\"measured_requests\":" << st.measured_requests
            << ",\"requests_per_s\":" << fixed(rps, 1)
            << ",\"publish_errors\":" << st.publish_errors
            << ",\"p50_ms\":" << fixed(ms(lat.percentile(0.5)), 3)
            << ",\"p99_ms\":" << fixed(ms(lat.percentile(0.99)), 3)
            << ",\"max_ms\":" << fixed(ms(lat.max()), 3) << ",\"delivered\":" << unique_received()
            << ",\"lost\":" << lost << ",\"duplicates\":" << st.duplicates
            << ",\"seq_gaps\":" << st.seq_gaps
            << ",\"delivery_p99_ms\":" << fixed(ms(dl.percentile(0.99)), 3)
            << ",\"closed_by_server\":" << st.closed_by_server
            << ",\"server_cpu\":" << fixed(server_cpu_, 3) << ",\"gen_cpu\":" << fixed(gen_cpu_, 3)
            << ",\"first_publish_error\":" << json_string(st.first_publish_error.substr(0, 200))
            << "}" << std::endl;
  if (!o.strict) return 0;
  return st.publish_errors == 0 && lost == 0 && st.duplicates == 0 && st.seq_gaps == 0 &&
                 st.acked == o.connections && st.measured_requests > 0
             ? 0
             : 1;
}

int Bench::report_delivery() {
  const auto& st = stats_;
  const std::uint64_t want = opts_.expect_events;
  std::size_t open = 0;
  std::size_t complete = 0;
  std::uint64_t unique = 0;
  for (const auto& c : conns_) {
    if (!c->acked()) continue;
    ++open;
    bool all = true;
    for (std::uint64_t n : c->received()) {
      unique += n;
      all = all && n >= want;
    }
    if (all) ++complete;
  }
  const std::uint64_t expect = static_cast<std::uint64_t>(open) * opts_.services * want;
  const std::uint64_t lost = expect > unique ? expect - unique : 0;
  const auto& lat = st.latency;
  std::cout << "  delivery: " << complete << " of " << open << " open connections got all " << want
            << " events; " << lost << " lost, " << st.duplicates
            << " duplicates, latency p50/p99/max " << fixed(ms(lat.percentile(0.5)), 2) << " / "
            << fixed(ms(lat.percentile(0.99)), 2) << " / " << fixed(ms(lat.max()), 2) << " ms\n";
  std::cout << "{\"bench\":\"streamgate-bench-delivery\",\"label\":" << json_string(opts_.label)
            << ",\"proc\":" << opts_.proc_index << ",\"connections\":" << opts_.connections
            << ",\"open\":" << open << ",\"complete\":" << complete
            << ",\"expect_per_conn\":" << want * opts_.services << ",\"expected\":" << expect
            << ",\"delivered\":" << unique << ",\"lost\":" << lost
            << ",\"duplicates\":" << st.duplicates << ",\"gaps\":" << st.gaps
            << ",\"seq_gaps\":" << st.seq_gaps << ",\"bad_frames\":" << st.bad_frames
            << ",\"closed_by_server\":" << st.closed_by_server
            << ",\"p50_ms\":" << fixed(ms(lat.percentile(0.5)), 3)
            << ",\"p99_ms\":" << fixed(ms(lat.percentile(0.99)), 3)
            << ",\"max_ms\":" << fixed(ms(lat.max()), 3) << "}" << std::endl;
  if (!opts_.strict) return 0;
  return complete == opts_.connections && lost == 0 && st.duplicates == 0 && st.seq_gaps == 0 &&
                 st.bad_frames == 0
             ? 0
             : 1;
}

bool Bench::step_failed() const {
  return step_lost_ > 0 || stats_.latency.percentile(0.99) > 1'000'000'000ULL ||
         stats_.closed_by_server > base_closed_ || stats_.publish_errors > 0;
}

int Bench::report() {
  const auto& st = stats_;
  const auto& o = opts_;
  const bool delivery = o.scenario == Scenario::kFanout || o.scenario == Scenario::kTenants;
  const std::uint64_t expect = delivery ? expected() - base_expected_ : 0;
  const std::uint64_t unique = unique_received() - base_unique_;
  const std::uint64_t lost = expect > unique ? expect - unique : 0;
  step_lost_ = lost;
  const double connects_per_s =
      connect_seconds_ > 0 ? static_cast<double>(st.acked) / connect_seconds_ : 0;
  double deliveries_per_s = 0;
  if (delivery && st.last_recv_ns > st.first_send_ns && st.first_send_ns != 0) {
    deliveries_per_s = static_cast<double>(unique) /
                       (static_cast<double>(st.last_recv_ns - st.first_send_ns) / 1e9);
  }
  const double per_conn =
      rss_before_ > 0 && rss_after_ > 0 && st.acked > 0
          ? static_cast<double>(rss_after_ - rss_before_) * 1024.0 / static_cast<double>(st.acked)
          : -1;
  const auto& lat = st.latency;
  const auto& cl = st.connect_latency;

  // The human table.
  std::ostringstream t;
  t << "streamgate-bench " << to_string(o.scenario) << " against " << to_string(o.peer)
    << (o.label.empty() ? "" : " (" + o.label + ")") << "\n";
  auto row = [&](const std::string& k, const std::string& v) {
    t << "  " << k << std::string(k.size() < 28 ? 28 - k.size() : 1, ' ') << v << "\n";
  };
  row(o.scenario == Scenario::kChurn ? "connections (all cycles)" : "connections",
      std::to_string(st.acked) + " acked" +
          (o.scenario == Scenario::kChurn ? std::string()
                                          : " of " + std::to_string(o.connections)) +
          (st.connect_failed ? ", " + std::to_string(st.connect_failed) + " failed" : "") +
          (st.http_rejected ? ", " + std::to_string(st.http_rejected) + " refused" : ""));
  if (o.scenario != Scenario::kChurn) {
    row("connect phase",
        fixed(connect_seconds_, 2) + " s, " + fixed(connects_per_s, 0) + " conn/s");
  }
  row("connect latency p50/p99",
      fixed(ms(cl.percentile(0.5)), 2) + " / " + fixed(ms(cl.percentile(0.99)), 2) + " ms");
  if (active_ >= 0)
    row("server active/subs", std::to_string(active_) + " / " + std::to_string(subscriptions_));
  if (rss_before_ > 0) {
    row("server RSS", std::to_string(rss_before_) + " KiB before, " + std::to_string(rss_after_) +
                          " KiB after connect" +
                          (per_conn >= 0 ? ", " + fixed(per_conn, 0) + " B/conn" : ""));
  }
  if (delivery) {
    row("rate", fixed(step_rate_, 1) + " events/s (step " + std::to_string(step_) + ")");
    row("published",
        std::to_string(st.published) + " events in " + std::to_string(st.publish_requests) +
            " requests" +
            (st.publish_errors ? ", " + std::to_string(st.publish_errors) + " refused" : ""));
    row("delivered", std::to_string(unique) + " of " + std::to_string(expect) + " expected, " +
                         std::to_string(lost) + " lost");
    row("deliveries/s", fixed(deliveries_per_s, 0));
    row("latency p50/p90/p99", fixed(ms(lat.percentile(0.5)), 2) + " / " +
                                   fixed(ms(lat.percentile(0.9)), 2) + " / " +
                                   fixed(ms(lat.percentile(0.99)), 2) + " ms");
    row("latency p99.9/max",
        fixed(ms(lat.percentile(0.999)), 2) + " / " + fixed(ms(lat.max()), 2) + " ms");
    row("gaps/dups/seq gaps", std::to_string(st.gaps) + " / " + std::to_string(st.duplicates) +
                                  " / " + std::to_string(st.seq_gaps));
  }
  if (o.scenario == Scenario::kChurn) {
    row("cycles", std::to_string(st.cycles) + " in " + fixed(window_s_, 1) +
                      " s = " + fixed(static_cast<double>(st.cycles) / window_s_, 0) + " /s, " +
                      std::to_string(st.resumed) + " resumed");
  }
  if (server_cpu_ >= 0)
    row("server / generator CPU",
        fixed(server_cpu_ * 100, 0) + " % / " + fixed(gen_cpu_ * 100, 0) + " %");
  if (st.closed_by_server) {
    std::string codes;
    for (const auto& [code, n] : st.close_codes) {
      codes += ' ';
      codes += std::to_string(code);
      codes += 'x';
      codes += std::to_string(n);
    }
    row("closed by server", std::to_string(st.closed_by_server) + ":" + codes);
  }
  if (!st.first_error.empty()) row("first error", st.first_error.substr(0, 200));
  if (!st.first_publish_error.empty()) row("first publish error", st.first_publish_error);
  std::cout << t.str();

  std::ostringstream j;
  j << "{\"bench\":\"streamgate-bench\",\"scenario\":\"" << to_string(o.scenario)
    << "\",\"peer\":\"" << to_string(o.peer) << "\",\"label\":" << json_string(o.label)
    << ",\"proc\":" << o.proc_index << ",\"connections\":" << o.connections
    << ",\"services\":" << o.services << ",\"users_per_org\":" << users_per_org_
    << ",\"channels\":" << channels_ << ",\"acked\":" << st.acked
    << ",\"connect_failed\":" << st.connect_failed << ",\"http_rejected\":" << st.http_rejected
    << ",\"connect_seconds\":" << fixed(connect_seconds_, 4)
    << ",\"connects_per_s\":" << fixed(connects_per_s, 1)
    << ",\"connect_p50_ms\":" << fixed(ms(cl.percentile(0.5)), 3)
    << ",\"connect_p99_ms\":" << fixed(ms(cl.percentile(0.99)), 3)
    << ",\"connect_cpu_server_s\":" << fixed(connect_cpu_server_, 3)
    << ",\"connect_cpu_gen_s\":" << fixed(connect_cpu_gen_, 3)
    << ",\"phase_start_ns\":" << phase_start_ns_ << ",\"rss_before_kib\":" << rss_before_
    << ",\"rss_after_kib\":" << rss_after_ << ",\"rss_peak_kib\":" << rss_peak_
    << ",\"rss_per_conn_bytes\":" << fixed(per_conn, 1) << ",\"active_connections\":" << active_
    << ",\"subscriptions\":" << subscriptions_ << ",\"step\":" << step_
    << ",\"rate\":" << fixed(delivery ? step_rate_ : o.rate, 1) << ",\"batch\":" << o.batch
    << ",\"payload\":" << o.payload << ",\"duration\":" << fixed(o.duration, 2)
    << ",\"published\":" << st.published << ",\"publish_requests\":" << st.publish_requests
    << ",\"publish_errors\":" << st.publish_errors << ",\"expected\":" << expect
    << ",\"received\":" << st.received << ",\"delivered\":" << unique << ",\"lost\":" << lost
    << ",\"gaps\":" << st.gaps << ",\"duplicates\":" << st.duplicates
    << ",\"seq_gaps\":" << st.seq_gaps << ",\"bad_frames\":" << st.bad_frames
    << ",\"error_frames\":" << st.error_frames << ",\"closed_by_server\":" << st.closed_by_server
    << ",\"deliveries_per_s\":" << fixed(deliveries_per_s, 1)
    << ",\"latency_count\":" << lat.count() << ",\"p50_ms\":" << fixed(ms(lat.percentile(0.5)), 3)
    << ",\"p90_ms\":" << fixed(ms(lat.percentile(0.9)), 3)
    << ",\"p99_ms\":" << fixed(ms(lat.percentile(0.99)), 3)
    << ",\"p999_ms\":" << fixed(ms(lat.percentile(0.999)), 3)
    << ",\"max_ms\":" << fixed(ms(lat.max()), 3) << ",\"cycles\":" << st.cycles
    << ",\"cycles_per_s\":"
    << fixed(window_s_ > 0 && o.scenario == Scenario::kChurn
                 ? static_cast<double>(st.cycles) / window_s_
                 : 0,
             1)
    << ",\"resumed\":" << st.resumed << ",\"server_cpu\":" << fixed(server_cpu_, 3)
    << ",\"gen_cpu\":" << fixed(gen_cpu_, 3) << ",\"window_s\":" << fixed(window_s_, 3)
    << ",\"first_error\":" << json_string(st.first_error.substr(0, 200))
    << ",\"first_publish_error\":" << json_string(st.first_publish_error.substr(0, 200)) << "}";
  std::cout << j.str() << std::endl;

  if (!o.strict) return 0;
  const bool all_acked = o.scenario == Scenario::kChurn
                             ? st.connect_failed == 0 && st.http_rejected == 0
                             : st.acked == o.connections;
  const bool bad = !all_acked || lost != 0 || st.publish_errors != 0 || st.error_frames != 0 ||
                   st.bad_frames != 0 || st.duplicates != 0 || st.seq_gaps != 0 ||
                   (delivery && st.published == 0) ||
                   (o.scenario == Scenario::kChurn && st.cycles == 0);
  return bad ? 1 : 0;
}

}  // namespace sgb
