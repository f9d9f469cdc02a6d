#include "bench.hpp"

#include <boost/asio/write.hpp>

#include <charconv>

namespace sgb {

// One keep-alive connection publishing one event per request, the next as soon as the answer
// is in (a closed loop: what it measures is how fast the server answers, not a rate).
Producer::Producer(Bench& bench, std::size_t index)
    : bench_(bench), index_(index), socket_(bench.io()) {}

void Producer::start(std::uint64_t end_ns) {
  end_ns_ = end_ns;
  const auto& o = bench_.options();
  const tcp::endpoint server(asio::ip::make_address(o.host),
                             o.publish_port != 0 ? o.publish_port : o.port);
  socket_.async_connect(server, [this](const boost::system::error_code& ec) {
    if (ec) {
      fail("producer connect: " + ec.message());
      return;
    }
    boost::system::error_code e;
    socket_.set_option(tcp::no_delay(true), e);
    do_read();
    send_next();
  });
}

void Producer::fail(const std::string& why) {
  done_ = true;
  auto& st = bench_.stats();
  ++st.publish_errors;
  if (st.first_publish_error.empty()) st.first_publish_error = why;
}

void Producer::send_next() {
  const std::uint64_t now = now_ns();
  if (now >= end_ns_ || bench_.stopping()) {
    done_ = true;
    return;
  }
  const auto& o = bench_.options();
  const std::size_t channel = 0;
  const std::uint64_t c = bench_.next_channel_seq(channel);
  std::string data = R"({"t":)" + std::to_string(now) + R"(,"c":)" + std::to_string(c) +
                     R"(,"i":)" + std::to_string(index_) + R"(,"p":")";
  const std::size_t room = o.payload > data.size() + 2 ? o.payload - data.size() - 2 : 0;
  data.append(room, 'x');
  data += "\"}";
  const std::string body = R"({"orgId":)" + std::to_string(o.org_base) +
                           R"(,"service":"s0","event":"bench","data":)" + data + "}";
  request_ =
      "POST /v2/realtime/publish HTTP/1.1\r\nHost: " + o.host + "\r\nAuthorization: Bearer " +
      o.api_key +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  sent_ns_ = now;
  auto& st = bench_.stats();
  if (st.first_send_ns == 0) st.first_send_ns = now;
  st.last_send_ns = now;
  ++st.publish_requests;
  asio::async_write(socket_, asio::buffer(request_),
                    [this](const boost::system::error_code& ec, std::size_t) {
                      if (ec) fail("producer write: " + ec.message());
                    });
}

void Producer::do_read() {
  socket_.async_read_some(asio::buffer(buf_), [this](const boost::system::error_code& ec,
                                                     std::size_t n) { on_read(ec, n); });
}

void Producer::on_read(const boost::system::error_code& ec, std::size_t n) {
  if (ec) {
    if (!done_) fail("producer read: " + ec.message());
    return;
  }
  rx_.append(buf_.data(), n);
  for (;;) {
    const std::size_t end = rx_.find("\r\n\r\n");
    if (end == std::string::npos) break;
    int status = 0;
    if (rx_.size() > 12) std::from_chars(rx_.data() + 9, rx_.data() + 12, status);
    std::size_t length = 0;
    // Both servers send the header in this spelling or in lower case.
    for (const char* name : {"\r\nContent-Length:", "\r\ncontent-length:"}) {
      const std::size_t cl = rx_.find(name);
      if (cl == std::string::npos || cl > end) continue;
      std::size_t p = cl + 17;
      while (p < end && rx_[p] == ' ') ++p;
      std::from_chars(rx_.data() + p, rx_.data() + end, length);
    }
    if (rx_.size() < end + 4 + length) break;
    rx_.erase(0, end + 4 + length);
    on_response(status);
  }
  do_read();
}

void Producer::on_response(int status) {
  const std::uint64_t now = now_ns();
  auto& st = bench_.stats();
  if (status == 200) {
    ++st.published;
    bench_.count_published(0, 1);
    if (sent_ns_ >= bench_.measure_from_ns()) {
      st.request_latency.record(now - sent_ns_);
      ++st.measured_requests;
    }
  } else {
    ++st.publish_errors;
    if (st.first_publish_error.empty()) st.first_publish_error = "HTTP " + std::to_string(status);
  }
  send_next();
}

}  // namespace sgb
