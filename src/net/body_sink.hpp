// BodySink: a handler that takes a request body piece by piece instead of as one string, for
// bodies of any size (tus PATCH sends whole files). The HTTP session reads the next piece only
// after the sink has taken the previous one, so a connection holds one buffer, never the body.
#pragma once

#include "net/http_types.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string_view>

namespace sg::net {

class BodySink {
 public:
  // Called exactly once per piece, from any thread. Empty: read on. A response: stop reading,
  // answer it and close the connection (the rest of the body is never read).
  using Next = std::function<void(std::optional<HttpResponse> stop)>;

  virtual ~BodySink() = default;

  // One piece of the body, in order; `piece` is valid until `next` is called. Called on the
  // session's worker thread, never while an earlier piece is still being taken.
  virtual void on_data(std::string_view piece, Next next) = 0;
  // The whole body has arrived; answer through `reply` (from any thread).
  virtual void on_end(Reply reply) = 0;
  // The body was cut short (peer gone, idle timeout, broken chunked encoding): nobody is left
  // to answer. Bytes already taken stay taken unless the sink decides otherwise.
  virtual void on_abort() = 0;
};

// A streamed-body handler's decision after the request's headers: answer at once (the body is
// not read; the connection closes unless there was no body) or read the body into `sink`.
struct BodyDecision {
  std::optional<HttpResponse> response;
  std::shared_ptr<BodySink> sink;
};
using Decide = std::function<void(BodyDecision)>;

}  // namespace sg::net
