#include "bench.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>

#include <charconv>
#include <cmath>

namespace sgb {

namespace {

// Lower-cased copy, for header names.
std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& ch : out) {
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  }
  return out;
}

}  // namespace

Publisher::Publisher(Bench& bench, double rate)
    : bench_(bench), rate_(rate), socket_(bench.io()), timer_(bench.io()) {}

void Publisher::start(std::uint64_t start_ns, std::uint64_t end_ns) {
  start_ns_ = start_ns;
  end_ns_ = end_ns;
  total_ = static_cast<std::uint64_t>(
      std::llround(rate_ * static_cast<double>(end_ns - start_ns) / 1e9));
  connect();
}

bool Publisher::done() const {
  return failed_ || (sent_ >= total_ && in_flight_ == 0 && request_.empty() && body_.empty());
}

void Publisher::connect() {
  const auto& o = bench_.options();
  const tcp::endpoint server(asio::ip::make_address(o.host),
                             o.publish_port != 0 ? o.publish_port : o.port);
  socket_.async_connect(server, [this](const boost::system::error_code& ec) { on_connect(ec); });
}

void Publisher::on_connect(const boost::system::error_code& ec) {
  if (ec) {
    fail("publisher connect: " + ec.message());
    return;
  }
  boost::system::error_code e;
  socket_.set_option(tcp::no_delay(true), e);
  connected_ = true;
  if (bench_.options().peer == Peer::kNats) {
    request_ = R"(CONNECT {"verbose":false,"pedantic":false,"protocol":1,"name":"publisher"})"
               "\r\n";
  }
  do_read();
  pump();
}

void Publisher::fail(const std::string& why) {
  failed_ = true;
  auto& st = bench_.stats();
  if (st.first_publish_error.empty()) st.first_publish_error = why;
  timer_.cancel();
}

void Publisher::arm_timer(std::uint64_t due_ns) {
  if (timer_armed_) return;
  timer_armed_ = true;
  const std::uint64_t now = now_ns();
  const auto wait = std::chrono::nanoseconds(due_ns > now ? due_ns - now : 0);
  timer_.expires_after(wait);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    timer_armed_ = false;
    if (!ec) pump();
  });
}

// Sends what is due: events are spread evenly over [start, end]; what fell due while a
// request was outstanding goes in the next batch (up to --batch events).
void Publisher::pump() {
  if (failed_ || !connected_) return;
  const auto& o = bench_.options();
  const bool nats = o.peer == Peer::kNats;
  if (!nats && in_flight_ > 0) return;  // one request at a time on the keep-alive connection
  while (sent_ < total_) {
    const std::uint64_t now = now_ns();
    if (now < start_ns_) {
      arm_timer(start_ns_);
      return;
    }
    const double elapsed = static_cast<double>(now - start_ns_) / 1e9;
    std::uint64_t due = static_cast<std::uint64_t>(elapsed * rate_) + 1;
    if (due > total_) due = total_;
    if (due <= sent_) {
      const double next = static_cast<double>(sent_) / rate_;
      arm_timer(start_ns_ + static_cast<std::uint64_t>(next * 1e9));
      return;
    }
    const std::uint64_t n = std::min<std::uint64_t>(due - sent_, o.batch);
    auto& st = bench_.stats();
    if (st.first_send_ns == 0) st.first_send_ns = now;
    st.last_send_ns = now;
    std::string batch;
    batch.reserve(static_cast<std::size_t>(n) * (o.payload + 80) + 2);
    if (!nats && n > 1) batch += '[';
    for (std::uint64_t k = 0; k < n; ++k) {
      const std::uint64_t index = sent_ + k;
      const std::size_t channel = static_cast<std::size_t>(index % bench_.channels());
      const std::uint64_t c = bench_.next_channel_seq(channel);
      const std::uint64_t org = bench_.options().org_base + channel / o.services;
      const std::size_t service = channel % o.services;
      // The data object is --payload bytes: fixed keys, then padding to the size.
      std::string data = R"({"t":)" + std::to_string(now) + R"(,"c":)" + std::to_string(c) +
                         R"(,"i":)" + std::to_string(index) + R"(,"p":")";
      const std::size_t room = o.payload > data.size() + 2 ? o.payload - data.size() - 2 : 0;
      data.append(room, 'x');
      data += "\"}";
      if (nats) {
        batch += "PUB o" + std::to_string(org) + ".s" + std::to_string(service) + " " +
                 std::to_string(data.size()) + "\r\n" + data + "\r\n";
        bench_.count_published(channel, 1);
      } else {
        if (k) batch += ',';
        batch += R"({"orgId":)" + std::to_string(org) + R"(,"service":"s)" +
                 std::to_string(service) + R"(","event":"bench","data":)" + data + "}";
        channels_.push_back(channel);
      }
    }
    if (!nats && n > 1) batch += ']';
    sent_ += n;
    ++st.publish_requests;
    if (nats) {
      st.published += n;
      body_ += batch;
    } else {
      in_flight_ = static_cast<std::size_t>(n);
      std::string head =
          "POST /v2/realtime/publish HTTP/1.1\r\nHost: " + o.host + "\r\nAuthorization: Bearer " +
          o.api_key +
          "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(batch.size()) +
          "\r\n\r\n";
      body_ += head;
      body_ += batch;
    }
    do_write();
    if (!nats) return;  // wait for the response
  }
}

void Publisher::do_write() {
  if (writing_ || failed_) return;
  if (request_.empty()) {
    if (body_.empty()) return;
    request_.swap(body_);
  }
  writing_ = true;
  asio::async_write(socket_, asio::buffer(request_),
                    [this](const boost::system::error_code& ec, std::size_t) {
                      writing_ = false;
                      request_.clear();
                      if (ec) {
                        fail("publisher write: " + ec.message());
                        return;
                      }
                      do_write();
                      if (bench_.options().peer == Peer::kNats) pump();
                    });
}

void Publisher::do_read() {
  socket_.async_read_some(asio::buffer(buf_), [this](const boost::system::error_code& ec,
                                                     std::size_t n) { on_read(ec, n); });
}

void Publisher::on_read(const boost::system::error_code& ec, std::size_t n) {
  if (ec) {
    if (!done()) fail("publisher read: " + ec.message());
    return;
  }
  rx_.append(buf_.data(), n);
  if (bench_.options().peer == Peer::kNats) {
    std::size_t pos = 0;
    for (;;) {
      const std::size_t eol = rx_.find("\r\n", pos);
      if (eol == std::string::npos) break;
      const std::string_view line(rx_.data() + pos, eol - pos);
      if (line == "PING") {
        body_ += "PONG\r\n";
        do_write();
      } else if (line.starts_with("-ERR")) {
        auto& st = bench_.stats();
        ++st.publish_errors;
        if (st.first_publish_error.empty()) st.first_publish_error = std::string(line);
      }
      pos = eol + 2;
    }
    rx_.erase(0, pos);
    do_read();
    return;
  }
  for (;;) {
    const std::size_t end = rx_.find("\r\n\r\n");
    if (end == std::string::npos) break;
    int status = 0;
    if (rx_.size() > 12) std::from_chars(rx_.data() + 9, rx_.data() + 12, status);
    const std::string head = lower(std::string_view(rx_).substr(0, end));
    std::size_t length = 0;
    const std::size_t cl = head.find("\r\ncontent-length:");
    if (cl != std::string::npos) {
      std::size_t p = cl + 17;
      while (p < head.size() && head[p] == ' ') ++p;
      std::from_chars(head.data() + p, head.data() + head.size(), length);
    }
    if (rx_.size() < end + 4 + length) break;
    const std::string body = rx_.substr(end + 4, length);
    rx_.erase(0, end + 4 + length);
    on_response(status, body);
  }
  do_read();
}

void Publisher::on_response(int status, std::string_view body) {
  auto& st = bench_.stats();
  const auto n = in_flight_;
  in_flight_ = 0;
  if (status == 200) {
    st.published += n;
    for (const auto channel : channels_) bench_.count_published(channel, 1);
  } else {
    st.publish_errors += n;
    if (st.first_publish_error.empty()) {
      st.first_publish_error =
          "HTTP " + std::to_string(status) + ": " + std::string(body.substr(0, 300));
    }
  }
  channels_.clear();
  pump();
}

}  // namespace sgb
