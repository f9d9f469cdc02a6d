#include "support/redis_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace sg::test {
namespace {

using namespace std::chrono_literals;

std::string find_binary() {
  if (const char* env = std::getenv("STREAMGATE_TEST_REDIS_SERVER"); env && *env) return env;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/usr/local/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = dir + "/redis-server";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  throw std::runtime_error(
      "redis-server not found: install it (scripts/install-deps.sh) or set "
      "STREAMGATE_TEST_REDIS_SERVER");
}

// A port the kernel just handed out on loopback. Another process could take it before Redis
// binds it; start() then tries again with a new one.
std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("could not find a free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

int connect_loopback(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// True when text[pos..] starts with one whole RESP reply; moves pos past it.
bool whole_reply(const std::string& text, std::size_t& pos) {
  const std::size_t end = text.find("\r\n", pos);
  if (end == std::string::npos || end == pos) return false;
  const char type = text[pos];
  const long long n = std::atoll(text.c_str() + pos + 1);
  pos = end + 2;
  if (type == '$') {
    if (n < 0) return true;
    if (text.size() < pos + static_cast<std::size_t>(n) + 2) return false;
    pos += static_cast<std::size_t>(n) + 2;
    return true;
  }
  if (type == '*') {
    for (long long i = 0; i < n; ++i) {
      if (!whole_reply(text, pos)) return false;
    }
  }
  return true;
}

// One request, its whole reply back; empty on any failure or after `timeout`.
std::string round_trip(std::uint16_t port, const std::string& request,
                       std::chrono::milliseconds timeout) {
  const int fd = connect_loopback(port);
  if (fd < 0) return {};
  std::string reply;
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
      static_cast<ssize_t>(request.size())) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buffer[4096];
    auto complete = [&reply] {
      std::size_t pos = 0;
      return whole_reply(reply, pos);
    };
    while (!complete()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      reply.append(buffer, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  std::size_t pos = 0;
  return whole_reply(reply, pos) ? reply : std::string();
}

// Appends piece by piece: GCC 12 at -O3 reports a false -Wrestrict overlap inside
// `"literal" + std::string&&` (its inlined insert at position 0).
std::string resp(std::initializer_list<std::string_view> args) {
  std::string out = "*";
  out += std::to_string(args.size());
  out += "\r\n";
  for (const auto arg : args) {
    out += '$';
    out += std::to_string(arg.size());
    out += "\r\n";
    out += arg;
    out += "\r\n";
  }
  return out;
}

}  // namespace

std::unique_ptr<RedisServer> RedisServer::start() {
  const std::string binary = find_binary();
  std::string last_error;
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::string dir_template =
        (std::filesystem::temp_directory_path() / "sg-redis-XXXXXX").string();
    if (::mkdtemp(dir_template.data()) == nullptr) {
      throw std::runtime_error("mkdtemp failed for the redis data directory");
    }
    std::unique_ptr<RedisServer> server(new RedisServer(binary, dir_template, free_port()));
    try {
      server->launch();
      server->wait_ready();
      return server;
    } catch (const std::exception& e) {
      last_error = e.what();
    }
  }
  throw std::runtime_error("redis-server did not start: " + last_error);
}

RedisServer& RedisServer::shared() {
  static const std::unique_ptr<RedisServer> server = start();
  return *server;
}

RedisServer::RedisServer(std::string binary, std::string dir, std::uint16_t port)
    : binary_(std::move(binary)), dir_(std::move(dir)), port_(port) {}

RedisServer::~RedisServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGCONT);
    kill();
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string RedisServer::url() const {
  return "redis://127.0.0.1:" + std::to_string(port_);
}

void RedisServer::launch() {
  const std::string port = std::to_string(port_);
  const std::string log = dir_ + "/redis.log";
  std::vector<std::string> args = {
      binary_, "--port",       port,  "--bind",    "127.0.0.1", "--dir",
      dir_,    "--appendonly", "yes", "--save",    "",          "--protected-mode",
      "no",    "--daemonize",  "no",  "--logfile", log};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // Only async-signal-safe calls until exec: the parent has other threads.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed test leaves no server behind
    if (::getppid() != parent) ::_exit(127);
    const int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(null, 2);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  pid_ = pid;
}

void RedisServer::wait_ready() const {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  const std::string ping = resp({"PING"});
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      throw std::runtime_error("redis-server exited at start; log:\n" + log_tail());
    }
    if (round_trip(port_, ping, 500ms) == "+PONG\r\n") return;
    std::this_thread::sleep_for(20ms);
  }
  throw std::runtime_error("redis-server did not answer PING within 10 s; log:\n" + log_tail());
}

std::string RedisServer::log_tail() const {
  std::ifstream in(dir_ + "/redis.log");
  std::stringstream text;
  text << in.rdbuf();
  const std::string all = text.str();
  return all.size() > 2000 ? all.substr(all.size() - 2000) : all;
}

void RedisServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGCONT);
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

void RedisServer::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

void RedisServer::restart() {
  if (pid_ > 0) stop();
  launch();
  wait_ready();
}

void RedisServer::pause() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void RedisServer::resume() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

std::string RedisServer::command(std::initializer_list<std::string_view> args) const {
  const std::string reply = round_trip(port_, resp(args), 2000ms);
  if (reply.empty()) throw std::runtime_error("redis did not answer a command");
  return reply;
}

}  // namespace sg::test
