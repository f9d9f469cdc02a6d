#include "bench.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <boost/asio/post.hpp>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace sgb {

namespace {

constexpr std::uint8_t kText = 0x1;
constexpr std::uint8_t kBinary = 0x2;
constexpr std::uint8_t kClose = 0x8;
constexpr std::uint8_t kPing = 0x9;
constexpr std::uint8_t kPong = 0xA;

// Reads the unsigned decimal starting at `pos`; false when there is none.
bool read_uint(std::string_view s, std::size_t pos, std::uint64_t& out) {
  if (pos >= s.size()) return false;
  const auto r = std::from_chars(s.data() + pos, s.data() + s.size(), out);
  return r.ec == std::errc{} && r.ptr != s.data() + pos;
}

// The number after `key` (which includes the quotes and colon), searched from `from`.
bool field_uint(std::string_view s, std::string_view key, std::size_t from, std::uint64_t& out) {
  const std::size_t p = s.find(key, from);
  return p != std::string_view::npos && read_uint(s, p + key.size(), out);
}

}  // namespace

WsConn::WsConn(Bench& bench, std::size_t index)
    : bench_(bench),
      index_(index),
      socket_(bench.io()),
      last_c_(bench.options().services, 0),
      received_(bench.options().services, 0),
      mask_state_(static_cast<std::uint32_t>(index * 2654435761U + 1)) {}

void WsConn::start() {
  ++generation_;
  boost::system::error_code ec;
  if (socket_.is_open()) socket_.close(ec);
  state_ = State::kConnecting;
  reading_ = writing_ = counted_ = false;
  rx_.clear();
  message_.clear();
  nats_.clear();
  out_.clear();
  last_seq_ = 0;
  std::fill(last_c_.begin(), last_c_.end(), 0);
  started_ns_ = now_ns();
  ++bench_.stats().connect_started;

  const auto& o = bench_.options();
  socket_.open(tcp::v4(), ec);
  if (!ec) {
    // The port is picked at connect() time, per destination, so 127.0.0.x never runs out of
    // ephemeral ports just because many sockets were bound first.
    const int one = 1;
    ::setsockopt(socket_.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    socket_.bind(bench_.source(index_), ec);
  }
  if (ec) {
    bench_.stats().first_error =
        bench_.stats().first_error.empty() ? "socket: " + ec.message() : bench_.stats().first_error;
    const auto g = generation_;
    // Never re-enter the caller (the connect loop) from here.
    asio::post(bench_.io(), [this, g] {
      if (g == generation_) finish(false, 0);
    });
    return;
  }
  socket_.non_blocking(true, ec);
  socket_.set_option(tcp::no_delay(true), ec);
  const tcp::endpoint server(asio::ip::make_address(o.host), o.port);
  socket_.async_connect(server, [this, g = generation_](const boost::system::error_code& e) {
    if (g == generation_) on_connect(e);
  });
}

void WsConn::on_connect(const boost::system::error_code& ec) {
  if (state_ != State::kConnecting) return;
  if (ec) {
    auto& st = bench_.stats();
    if (st.first_error.empty()) st.first_error = "connect: " + ec.message();
    finish(false, 0);
    return;
  }
  const auto& o = bench_.options();
  state_ = State::kUpgrading;
  std::string req;
  req.reserve(512);
  req += "GET ";
  if (o.peer == Peer::kNats) {
    req += "/";
  } else if (o.auth_header) {
    req += o.path;
  } else {
    req += o.path;
    req += "?access_token=";
    req += bench_.token(index_);
  }
  req += " HTTP/1.1\r\nHost: ";
  req += o.host;
  if (o.auth_header && o.peer != Peer::kNats) {
    req += "\r\nAuthorization: Bearer ";
    req += bench_.token(index_);
  }
  req +=
      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  send_raw(std::move(req));
  do_read();
}

void WsConn::do_read() {
  if (reading_ || state_ == State::kClosed) return;
  reading_ = true;
  socket_.async_wait(tcp::socket::wait_read,
                     [this, g = generation_](const boost::system::error_code& ec) {
                       if (g == generation_) on_readable(ec);
                     });
}

void WsConn::on_readable(const boost::system::error_code& ec) {
  reading_ = false;
  if (state_ == State::kClosed) return;
  if (ec) {
    finish(true, 1006);
    return;
  }
  char* buf = bench_.scratch();
  const std::size_t size = bench_.scratch_size();
  const auto g = generation_;
  for (int i = 0; i < 4; ++i) {
    const ssize_t n = ::recv(socket_.native_handle(), buf, size, MSG_DONTWAIT);
    if (n > 0) {
      on_bytes(buf, static_cast<std::size_t>(n), now_ns());
      if (g != generation_ || state_ == State::kClosed) return;
      if (static_cast<std::size_t>(n) < size) break;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
    finish(true, 1006);  // EOF or reset
    return;
  }
  do_read();
}

void WsConn::on_bytes(const char* data, std::size_t n, std::uint64_t now) {
  if (state_ == State::kUpgrading) {
    rx_.append(data, n);
    if (!on_upgrade_response(now)) return;
    if (rx_.empty()) return;
    std::string rest;
    rest.swap(rx_);
    const std::size_t used = on_frames(rest.data(), rest.size(), now);
    if (state_ != State::kClosed && used < rest.size()) rx_.assign(rest, used);
    return;
  }
  if (rx_.empty()) {
    const std::size_t used = on_frames(data, n, now);
    if (state_ != State::kClosed && used < n) rx_.assign(data + used, n - used);
    return;
  }
  rx_.append(data, n);
  std::string buf;
  buf.swap(rx_);
  const std::size_t used = on_frames(buf.data(), buf.size(), now);
  if (state_ != State::kClosed && used < buf.size()) rx_.assign(buf, used);
}

bool WsConn::on_upgrade_response(std::uint64_t) {
  const std::size_t end = rx_.find("\r\n\r\n");
  if (end == std::string::npos) {
    if (rx_.size() > 16384) finish(false, 0);
    return false;
  }
  int status = 0;
  if (rx_.size() > 12 && rx_.compare(0, 5, "HTTP/") == 0) {
    std::from_chars(rx_.data() + 9, rx_.data() + 12, status);
  }
  if (status != 101) {
    auto& st = bench_.stats();
    ++st.http_rejected;
    ++st.http_status[status];
    if (st.first_error.empty()) {
      st.first_error = "upgrade refused: " + rx_.substr(0, std::min<std::size_t>(rx_.size(), 300));
    }
    counted_ = true;
    finish(false, 0);
    return false;
  }
  rx_.erase(0, end + 4);
  state_ = State::kSubscribing;
  send_subscribe();
  return true;
}

void WsConn::send_subscribe() {
  const auto& o = bench_.options();
  std::string msg;
  if (o.peer == Peer::kNats) {
    msg = R"(CONNECT {"verbose":false,"pedantic":false,"protocol":1,"name":"bench"})"
          "\r\n";
    const std::string org = std::to_string(bench_.org_of(index_));
    for (std::size_t s = 0; s < o.services; ++s) {
      msg += "SUB o" + org + ".s" + std::to_string(s) + " " + std::to_string(s + 1) + "\r\n";
    }
    msg += "PING\r\n";  // its PONG says every SUB before it is in place: our ack
    send_frame(kBinary, msg);
    return;
  }
  msg = R"({"services":[)";
  for (std::size_t s = 0; s < o.services; ++s) {
    if (s) msg += ',';
    msg += "\"s" + std::to_string(s) + "\"";
  }
  msg += "],\"version\":1";
  if (!bench_.resume_id().empty()) msg += R"(,"resume":{"s0":")" + bench_.resume_id() + "\"}";
  msg += '}';
  send_frame(kText, msg);
}

std::size_t WsConn::on_frames(const char* data, std::size_t n, std::uint64_t now) {
  std::size_t off = 0;
  const auto* u = reinterpret_cast<const unsigned char*>(data);
  while (n - off >= 2) {
    const unsigned char b0 = u[off];
    const unsigned char b1 = u[off + 1];
    std::size_t header = 2;
    std::uint64_t len = b1 & 0x7F;
    if (len == 126) {
      if (n - off < 4) break;
      len = (std::uint64_t{u[off + 2]} << 8) | u[off + 3];
      header = 4;
    } else if (len == 127) {
      if (n - off < 10) break;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | u[off + 2 + static_cast<std::size_t>(i)];
      header = 10;
    }
    if (b1 & 0x80) {  // servers never mask (RFC 6455 §5.1)
      ++bench_.stats().bad_frames;
      finish(true, 1002);
      return n;
    }
    if (n - off - header < len) break;
    const std::string_view payload(data + off + header, static_cast<std::size_t>(len));
    off += header + static_cast<std::size_t>(len);
    const std::uint8_t opcode = b0 & 0x0F;
    const bool fin = (b0 & 0x80) != 0;
    switch (opcode) {
      case kText:
      case kBinary:
        if (fin) {
          on_message(payload, now);
        } else {
          message_.assign(payload);
        }
        break;
      case 0x0:
        message_.append(payload);
        if (fin) {
          std::string whole;
          whole.swap(message_);
          on_message(whole, now);
        }
        break;
      case kPing:
        send_frame(kPong, payload);
        break;
      case kPong:
        break;
      case kClose: {
        int code = 1005;
        if (payload.size() >= 2) {
          code = (static_cast<unsigned char>(payload[0]) << 8) |
                 static_cast<unsigned char>(payload[1]);
        }
        if (state_ == State::kClosing) {
          finish(false, code);  // the answer to our close
        } else {
          const char echo[2] = {static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
          send_frame(kClose, code == 1005 ? std::string_view{} : std::string_view(echo, 2));
          finish(true, code);
        }
        return n;
      }
      default:
        ++bench_.stats().bad_frames;
        break;
    }
    if (state_ == State::kClosed) return n;
  }
  return off;
}

void WsConn::on_message(std::string_view payload, std::uint64_t now) {
  if (bench_.options().peer == Peer::kNats) {
    on_nats(payload, now);
  } else {
    on_json(payload, now);
  }
}

void WsConn::on_json(std::string_view text, std::uint64_t now) {
  auto& st = bench_.stats();
  if (text.starts_with(R"({"type":"event")")) {
    std::uint64_t seq = 0;
    // streamgate numbers each connection's frames; the node peer does not.
    if (field_uint(text, R"("seq":)", 14, seq)) {
      if (seq != last_seq_ + 1) st.seq_gaps += seq > last_seq_ ? seq - last_seq_ - 1 : 1;
      last_seq_ = seq;
    }
    std::uint64_t service = 0;
    std::uint64_t t = 0;
    std::uint64_t c = 0;
    const std::size_t data = text.find(R"("data":)");
    if (!field_uint(text, R"("service":"s)", 14, service) || data == std::string_view::npos ||
        !field_uint(text, R"("t":)", data, t) || !field_uint(text, R"("c":)", data, c)) {
      ++st.bad_frames;
      return;
    }
    on_event(static_cast<std::size_t>(service), c, t, now);
  } else if (text.starts_with(R"({"type":"ack")")) {
    on_ack(now, text.find(R"("recovered":true)") != std::string_view::npos);
  } else if (text.starts_with(R"({"type":"error")")) {
    ++st.error_frames;
    if (st.first_error.empty()) st.first_error = std::string(text.substr(0, 300));
  }
}

void WsConn::on_nats(std::string_view bytes, std::uint64_t now) {
  nats_.append(bytes);
  std::string_view s(nats_);
  std::size_t pos = 0;
  auto& st = bench_.stats();
  while (pos < s.size()) {
    const std::size_t eol = s.find("\r\n", pos);
    if (eol == std::string_view::npos) break;
    const std::string_view line = s.substr(pos, eol - pos);
    if (line.starts_with("MSG ")) {
      // MSG <subject> <sid> [reply-to] <#bytes>
      const std::size_t sp1 = line.find(' ', 4);
      const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
      const std::size_t last = line.rfind(' ');
      std::uint64_t sid = 0;
      std::uint64_t size = 0;
      if (sp2 == std::string_view::npos || !read_uint(line, sp1 + 1, sid) ||
          !read_uint(line, last + 1, size)) {
        ++st.bad_frames;
        pos = eol + 2;
        continue;
      }
      if (s.size() < eol + 2 + size + 2) break;  // payload not all here yet
      const std::string_view body = s.substr(eol + 2, static_cast<std::size_t>(size));
      pos = eol + 2 + static_cast<std::size_t>(size) + 2;
      std::uint64_t t = 0;
      std::uint64_t c = 0;
      if (sid == 0 || !field_uint(body, R"("t":)", 0, t) || !field_uint(body, R"("c":)", 0, c)) {
        ++st.bad_frames;
        continue;
      }
      on_event(static_cast<std::size_t>(sid - 1), c, t, now);
      continue;
    }
    pos = eol + 2;
    if (line == "PING") {
      send_frame(kBinary, "PONG\r\n");
    } else if (line == "PONG") {
      if (state_ == State::kSubscribing) on_ack(now, false);
    } else if (line.starts_with("-ERR")) {
      ++st.error_frames;
      if (st.first_error.empty()) st.first_error = std::string(line);
    }
    if (state_ == State::kClosed) return;
  }
  nats_.erase(0, pos);
}

void WsConn::on_event(std::size_t service, std::uint64_t c, std::uint64_t t, std::uint64_t now) {
  auto& st = bench_.stats();
  ++st.received;
  if (st.first_recv_ns == 0) st.first_recv_ns = now;
  st.last_recv_ns = now;
  if (service >= last_c_.size()) {
    ++st.bad_frames;
    return;
  }
  // publish: concurrent producers share the channel, so the server's order of their events is
  // not the order their c values were taken in; only streamgate's seq is checked there.
  if (bench_.options().scenario == Scenario::kPublish) c = last_c_[service] + 1;
  if (c <= last_c_[service]) {
    ++st.duplicates;
    return;
  }
  if (c != last_c_[service] + 1) st.gaps += c - last_c_[service] - 1;
  last_c_[service] = c;
  ++received_[service];
  if (t >= bench_.measure_from_ns() && t <= now) st.latency.record(now - t);
}

void WsConn::on_ack(std::uint64_t now, bool recovered) {
  if (state_ != State::kSubscribing) return;
  state_ = State::kOpen;
  auto& st = bench_.stats();
  ++st.acked;
  if (recovered) ++st.resumed;
  st.connect_latency.record(now - started_ns_);
  bench_.on_acked(*this);
}

void WsConn::close_gracefully() {
  if (state_ != State::kOpen) return;
  state_ = State::kClosing;
  const char code[2] = {static_cast<char>(1000 >> 8), static_cast<char>(1000 & 0xFF)};
  send_frame(kClose, std::string_view(code, 2));
}

void WsConn::drop() {
  ++generation_;
  state_ = State::kClosed;
  boost::system::error_code ec;
  socket_.close(ec);
}

void WsConn::send_frame(std::uint8_t opcode, std::string_view payload) {
  std::string f;
  f.reserve(payload.size() + 14);
  f += static_cast<char>(0x80 | opcode);
  if (payload.size() < 126) {
    f += static_cast<char>(0x80 | payload.size());
  } else if (payload.size() <= 0xFFFF) {
    f += static_cast<char>(0x80 | 126);
    f += static_cast<char>(payload.size() >> 8);
    f += static_cast<char>(payload.size() & 0xFF);
  } else {
    f += static_cast<char>(0x80 | 127);
    for (int i = 7; i >= 0; --i) f += static_cast<char>((payload.size() >> (8 * i)) & 0xFF);
  }
  // xorshift32: a fresh, unpredictable-enough masking key per frame.
  mask_state_ ^= mask_state_ << 13;
  mask_state_ ^= mask_state_ >> 17;
  mask_state_ ^= mask_state_ << 5;
  char key[4];
  std::memcpy(key, &mask_state_, 4);
  f.append(key, 4);
  for (std::size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ key[i & 3]);
  send_raw(std::move(f));
}

void WsConn::send_raw(std::string bytes) {
  if (state_ == State::kClosed) return;
  if (!out_.empty() || writing_) {
    out_ += bytes;
    return;
  }
  const ssize_t n =
      ::send(socket_.native_handle(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n == static_cast<ssize_t>(bytes.size())) return;
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    finish(true, 1006);
    return;
  }
  out_ = bytes.substr(n > 0 ? static_cast<std::size_t>(n) : 0);
  do_write();
}

void WsConn::do_write() {
  if (writing_ || out_.empty()) return;
  writing_ = true;
  socket_.async_wait(
      tcp::socket::wait_write, [this, g = generation_](const boost::system::error_code& ec) {
        if (g != generation_) return;
        writing_ = false;
        if (state_ == State::kClosed) return;
        if (ec) {
          finish(true, 1006);
          return;
        }
        const ssize_t n =
            ::send(socket_.native_handle(), out_.data(), out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          finish(true, 1006);
          return;
        }
        if (n > 0) out_.erase(0, static_cast<std::size_t>(n));
        do_write();
      });
}

void WsConn::finish(bool by_server, int code) {
  if (state_ == State::kClosed) return;
  const State prev = state_;
  state_ = State::kClosed;
  ++generation_;  // handlers still queued for this socket find they are stale
  boost::system::error_code ec;
  socket_.close(ec);
  auto& st = bench_.stats();
  const bool was_acked = prev == State::kOpen || prev == State::kClosing;
  if (prev == State::kOpen && by_server) {
    ++st.closed_by_server;
    ++st.close_codes[code];
  } else if (!was_acked && !counted_) {
    ++st.connect_failed;
  }
  bench_.on_closed(*this, was_acked);
}

}  // namespace sgb
