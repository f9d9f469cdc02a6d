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

}  // namespace sg::broker
