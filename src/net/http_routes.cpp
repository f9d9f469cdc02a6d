#include "net/http_routes.hpp"

namespace sg::net {

HttpRoute& HttpRoutes::add(std::function<bool(std::string_view)> matches) {
  HttpRoute& route = routes.emplace_back();
  route.matches = std::move(matches);
  return route;
}

const HttpRoute* HttpRoutes::find(std::string_view path) const {
  for (const auto& route : routes) {
    if (route.matches(path)) return &route;
  }
  return nullptr;
}

std::function<bool(std::string_view)> path_is(std::string path) {
  return [path = std::move(path)](std::string_view p) { return p == path; };
}

std::function<bool(std::string_view)> path_under(std::string prefix) {
  return [prefix = std::move(prefix)](std::string_view p) { return p.starts_with(prefix); };
}

}  // namespace sg::net
