#include "broker/broker.hpp"

namespace sg::broker {

std::string_view to_string(BrokerError e) {
  switch (e) {
    case BrokerError::kUnavailable:
      return "broker_unavailable";
    case BrokerError::kBadChannel:
      return "bad_channel";
    case BrokerError::kShuttingDown:
      return "shutting_down";
    case BrokerError::kBadUrl:
      return "bad_url";
    case BrokerError::kBadTls:
      return "bad_tls";
  }
  return "unknown_broker_error";
}

void Broker::history_page(const Channel& channel, Position after, std::size_t limit,
                          std::function<void(Result<History>)> done) {
  history(channel, std::move(after), [limit, done = std::move(done)](Result<History> read) {
    if (read && limit > 0 && read->events.size() > limit) read->events.resize(limit);
    if (done) done(std::move(read));
  });
}

void Broker::set_control_handler(ControlHandler) {}

void Broker::broadcast_control(std::string, std::function<void(Result<ControlReach>)> done) {
  if (done) done(ControlReach::kThisNode);
}

void Broker::ask_nodes(std::string, std::chrono::milliseconds,
                       std::function<void(Result<std::vector<std::string>>)> done) {
  if (done) done(make_error_code(BrokerError::kUnavailable));
}

void Broker::store_revocation(const Revocation&, std::function<void(Result<void>)> done) {
  if (done) done(Result<void>());
}

void Broker::set_revocation_sink(std::size_t, std::function<void(std::vector<Revocation>)>) {}

}  // namespace sg::broker
