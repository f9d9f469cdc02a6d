// The admin page served at /admin: one self-contained HTML document (inline CSS and script, no
// external resources, nothing to build) that polls /admin/stats every second.
#pragma once

#include <string_view>

namespace sg::api {

std::string_view admin_page();

}  // namespace sg::api
