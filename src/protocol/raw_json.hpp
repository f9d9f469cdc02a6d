// Internal to protocol: finds values inside JSON text that Boost.JSON has already accepted, so
// a producer's "data" can be forwarded as written instead of re-serialized from the DOM (which
// rewrites numbers: 1.5 becomes 1.5E0, integers past 64 bits become rounded doubles).
#pragma once

#include "protocol/protocol.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace sg::protocol::detail {

// `text` is meant to be one JSON value that Boost.JSON's strict parser accepted, whitespace
// around it allowed; these functions don't validate it again. On any other input they return
// kMalformedJson or a meaningless span, but never read outside `text`. Returned views point
// into `text`.

// The elements of the array `text`, in order, each without the whitespace around it.
Result<std::vector<std::string_view>> raw_array_elements(std::string_view text);

// The value of the member `key` at the top level of the object `text`, without the whitespace
// around it; an empty view when there is no such member. Keys compare by their unescaped value
// ("d\u0061ta" is "data"); of duplicate keys the last one counts, as in Boost.JSON's DOM.
Result<std::string_view> raw_member(std::string_view text, std::string_view key);

// `value` without the whitespace between its tokens; strings and numbers are copied byte for
// byte, escapes included. The result has room for `headroom` more bytes without reallocating.
std::string minify_json(std::string_view value, std::size_t headroom = 0);

}  // namespace sg::protocol::detail
