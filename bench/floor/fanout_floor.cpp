// The floor under one-event-per-request fan-out on this machine: a writer on CPU 0 sends one
// 160-byte message per event to each of N loopback TCP connections, in one io_uring submission
// per event with MSG_DONTWAIT (as streamgate's flush does) or one send() each; a reader on CPU 1
// drains them with epoll and records, per delivery, the time since the event began. No WebSocket
// framing, no JSON, no hub: what is left is the kernel's cost (bench/floor.sh).
//   fanout_floor [connections=1000] [events/s=20] [events=200] [uring|send]
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

constexpr std::size_t kMessage = 160;

std::uint64_t now_ns() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<std::uint64_t>(t.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(t.tv_nsec);
}

double thread_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

int read_all(const sockaddr_in& addr, int connections, int events) {
  pin(1);
  const int ep = epoll_create1(0);
  std::vector<int> fds(static_cast<std::size_t>(connections));
  for (int i = 0; i < connections; ++i) {
    fds[static_cast<std::size_t>(i)] = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fds[static_cast<std::size_t>(i)], reinterpret_cast<const sockaddr*>(&addr),
                sizeof addr) != 0) {
      std::perror("fanout_floor: connect");
      return 1;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<std::uint32_t>(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[static_cast<std::size_t>(i)], &ev);
  }
  const std::size_t expected =
      static_cast<std::size_t>(connections) * static_cast<std::size_t>(events);
  std::vector<double> latency_ms;
  latency_ms.reserve(expected);
  std::vector<std::array<char, kMessage>> partial(static_cast<std::size_t>(connections));
  std::vector<std::size_t> have(static_cast<std::size_t>(connections));
  static char buf[16384];
  epoll_event ready[256];
  while (latency_ms.size() < expected) {
    const int n = epoll_wait(ep, ready, 256, 5000);
    if (n <= 0) break;
    for (int j = 0; j < n; ++j) {
      const std::size_t i = ready[j].data.u32;
      const ssize_t got = recv(fds[i], buf, sizeof buf, 0);
      const std::uint64_t at = now_ns();
      for (std::size_t off = 0; got > 0 && off < static_cast<std::size_t>(got);) {
        const std::size_t take = std::min(kMessage - have[i], static_cast<std::size_t>(got) - off);
        std::memcpy(partial[i].data() + have[i], buf + off, take);
        have[i] += take;
        off += take;
        if (have[i] == kMessage) {
          std::uint64_t sent = 0;
          std::memcpy(&sent, partial[i].data(), sizeof sent);
          latency_ms.push_back(static_cast<double>(at - sent) / 1e6);
          have[i] = 0;
        }
      }
    }
  }
  std::sort(latency_ms.begin(), latency_ms.end());
  const auto q = [&](double p) {
    return latency_ms.empty() ? 0.0
                              : latency_ms[static_cast<std::size_t>(
                                    p * static_cast<double>(latency_ms.size() - 1))];
  };
  std::printf("deliveries %zu of %zu  latency p50 %.2f  p90 %.2f  p99 %.2f  max %.2f ms\n",
              latency_ms.size(), expected, q(0.5), q(0.9), q(0.99), q(1.0));
  return latency_ms.size() == expected ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const int connections = argc > 1 ? std::atoi(argv[1]) : 1000;
  const int rate = argc > 2 ? std::atoi(argv[2]) : 20;
  const int events = argc > 3 ? std::atoi(argv[3]) : 200;
  const bool uring = argc > 4 ? std::strcmp(argv[4], "send") != 0 : true;
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listener, 4096) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("fanout_floor: listen");
    return 1;
  }
  const pid_t reader = fork();
  if (reader == 0) return read_all(addr, connections, events);

  pin(0);
  std::vector<int> conns(static_cast<std::size_t>(connections));
  const int one = 1;
  for (auto& c : conns) {
    c = accept(listener, nullptr, nullptr);
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  io_uring ring{};
  if (uring && io_uring_queue_init(4096, &ring, 0) != 0) {
    std::fprintf(stderr, "fanout_floor: io_uring unavailable\n");
    return 1;
  }
  std::array<char, kMessage> message{};
  message.fill('x');
  usleep(200'000);
  double cpu_ms = 0;
  for (int e = 0; e < events; ++e) {
    const std::uint64_t start = now_ns();
    std::memcpy(message.data(), &start, sizeof start);
    const double cpu_before = thread_cpu_ms();
    if (uring) {
      for (const int c : conns) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        io_uring_prep_send(sqe, c, message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      }
      io_uring_submit(&ring);
      unsigned head = 0;
      unsigned seen = 0;
      io_uring_cqe* cqe = nullptr;
      io_uring_for_each_cqe(&ring, head, cqe) {
        ++seen;
      }
      io_uring_cq_advance(&ring, seen);
    } else {
      for (const int c : conns)
        send(c, message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    cpu_ms += thread_cpu_ms() - cpu_before;
    const std::uint64_t next = start + 1'000'000'000ULL / static_cast<std::uint64_t>(rate);
    while (now_ns() < next) usleep(200);
  }
  std::printf("writer CPU per event %.2f ms (%s, %d connections)\n", cpu_ms / events,
              uring ? "io_uring" : "send", connections);
  int status = 0;
  waitpid(reader, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
