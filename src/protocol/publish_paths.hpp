// Internal to protocol: the two ways parse_publish reads a body, exposed so a unit test can
// run both on the same input and compare. Callers outside protocol use parse_publish.
#pragma once

#include "protocol/protocol.hpp"

#include <optional>
#include <string_view>

namespace sg::protocol::detail {

// The reference: Boost.JSON's DOM, every rule and error of parse_publish.
Result<PublishBody> parse_publish_dom(std::string_view body, std::size_t max_batch,
                                      PublishErrorDetail& where);

// The common shape read without a DOM (Boost.JSON's SAX parser): one valid object whose
// field names are written without escapes and appear once. Anything else (a batch, an
// error of any kind, a duplicate or escaped field name) is nullopt, and the caller falls back
// to parse_publish_dom, so errors and their details always come from the reference.
std::optional<PublishBody> parse_publish_fast(std::string_view body);

}  // namespace sg::protocol::detail
