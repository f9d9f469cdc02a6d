// The floor under any HTTP/1.1 server on this machine: one thread, epoll, keep-alive connections,
// no parsing beyond finding where each request ends, and one fixed 200 answer per request. What
// it costs per request is the kernel's recv and send on loopback; streamgate's publish API
// compares against it (bench/floor.sh).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 0;
  const std::string body = R"({"id":"415f34693acd1-1"})";
  const std::string answer =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listener, 1024) != 0) {
    std::perror("http_floor: bind");
    return 1;
  }
  const int ep = epoll_create1(0);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.fd = listener;
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &lev);
  std::unordered_map<int, std::string> pending;
  epoll_event events[256];
  static char buf[65536];
  for (;;) {
    const int n = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == listener) {
        for (int c; (c = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK)) >= 0;) {
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event cev{};
          cev.events = EPOLLIN;
          cev.data.fd = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      const ssize_t got = recv(fd, buf, sizeof buf, 0);
      if (got <= 0) {
        pending.erase(fd);
        close(fd);
        continue;
      }
      std::string& in = pending[fd];
      in.append(buf, static_cast<std::size_t>(got));
      std::string out;
      for (;;) {
        const std::size_t head_end = in.find("\r\n\r\n");
        if (head_end == std::string::npos) break;
        std::size_t length = 0;
        const std::size_t cl = in.find("ontent-Length:");
        if (cl != std::string::npos && cl < head_end) {
          length = std::strtoul(in.c_str() + cl + 14, nullptr, 10);
        }
        if (in.size() < head_end + 4 + length) break;
        in.erase(0, head_end + 4 + length);
        out += answer;
      }
      if (!out.empty()) send(fd, out.data(), out.size(), MSG_NOSIGNAL);
    }
  }
}
