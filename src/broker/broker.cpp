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

}  // namespace sg::broker
