// streamgate-bench: see bench.hpp, docs/benchmarks.md and `streamgate-bench --help`.
#include "bench.hpp"

#include <cstdlib>
#include <iostream>

namespace sgb {

namespace {

constexpr const char* kUsage = R"(usage: streamgate-bench SCENARIO [options]

Scenarios:
  idle     open --connections subscribed connections; report connects/s and server RSS per
           connection (needs --server-pid), then hold them for --hold seconds or until SIGTERM;
           with --expect-events N the hold ends once every connection has N events on each
           service (published by someone else), and a second JSON line reports the delivery
  fanout   --connections subscribers on one (org, service) channel; publish --rate events/s for
           --duration s in batches of up to --batch (1 = one event per request, as most
           producers publish); deliveries/s, loss, latency percentiles
  publish  --producers (64) keep-alive connections, each publishing one event per request and
           the next as soon as it is answered, for --duration s (5) to one channel with
           --connections (0) subscribers; requests/s and request latency percentiles
  tenants  orgs of --users-per-org (10) users, each on all --services (10) of its org;
           --connections 10000 = 1,000 orgs x 10 services x 10 users; events round robin
  churn    --concurrency clients each looping connect, handshake with resume, ack, close,
           for --duration s; cycles per second

Target:
  --peer streamgate|node-ws|nats   (streamgate)
  --host A --port N                WebSocket address (127.0.0.1:4000)
  --publish-port N                 publish address if not --port (nats: its TCP client port)
  --path P                         (/v2/realtime/stream)
  --secret S --api-key K           HS256 secret for tokens, Bearer key for publish and metrics
  --auth query|header              token as ?access_token= (browsers; default) or Bearer header
  --server-pid PID                 read the server's RSS and CPU time from /proc

Shape:
  --connections N --users-per-org N --services N --org-base N
  --rate EV_PER_S --rates R1,R2,...  (phases on the same connections; stop at the first failing)
  --batch N --payload BYTES --duration S --warmup S --drain S --producers N
  --concurrency N --connect-rate PER_S --settle S --hold S --expect-events N
  --proc-index N   this generator among several (distinct users and source addresses)
  --label TEXT     copied into the JSON line
  --strict         exit 1 on a failed connect, a lost, duplicated or unparsable event, an error

Prints a table, then one JSON line starting with {"bench":.
)";

}  // namespace

std::string_view to_string(Peer p) {
  switch (p) {
    case Peer::kStreamgate:
      return "streamgate";
    case Peer::kNodeWs:
      return "node-ws";
    case Peer::kNats:
      return "nats";
  }
  return "?";
}

std::string_view to_string(Scenario s) {
  switch (s) {
    case Scenario::kIdle:
      return "idle";
    case Scenario::kFanout:
      return "fanout";
    case Scenario::kTenants:
      return "tenants";
    case Scenario::kChurn:
      return "churn";
    case Scenario::kPublish:
      return "publish";
  }
  return "?";
}

bool parse_options(int argc, char** argv, Options& o, std::string& error) {
  if (argc < 2) {
    error = "missing scenario";
    return false;
  }
  const std::string scenario = argv[1];
  if (scenario == "idle") {
    o.scenario = Scenario::kIdle;
  } else if (scenario == "fanout") {
    o.scenario = Scenario::kFanout;
  } else if (scenario == "tenants") {
    o.scenario = Scenario::kTenants;
    o.services = 10;
    o.connections = 10000;
    o.rate = 1000;
  } else if (scenario == "publish") {
    o.scenario = Scenario::kPublish;
    o.connections = 0;
    o.duration = 5;
  } else if (scenario == "churn") {
    o.scenario = Scenario::kChurn;
    o.concurrency = 64;
    o.duration = 5;
  } else {
    error = "unknown scenario: " + scenario;
    return false;
  }
  for (int i = 2; i < argc; ++i) {
    const std::string key = argv[i];
    if (key == "--strict") {
      o.strict = true;
      continue;
    }
    if (i + 1 >= argc) {
      error = key + " needs a value";
      return false;
    }
    const std::string v = argv[++i];
    try {
      if (key == "--peer") {
        if (v == "streamgate") {
          o.peer = Peer::kStreamgate;
        } else if (v == "node-ws") {
          o.peer = Peer::kNodeWs;
        } else if (v == "nats") {
          o.peer = Peer::kNats;
        } else {
          error = "unknown peer: " + v;
          return false;
        }
      } else if (key == "--host") {
        o.host = v;
      } else if (key == "--port") {
        o.port = static_cast<std::uint16_t>(std::stoul(v));
      } else if (key == "--publish-port") {
        o.publish_port = static_cast<std::uint16_t>(std::stoul(v));
      } else if (key == "--auth") {
        if (v != "query" && v != "header") {
          error = "--auth is query or header";
          return false;
        }
        o.auth_header = v == "header";
      } else if (key == "--path") {
        o.path = v;
      } else if (key == "--secret") {
        o.secret = v;
      } else if (key == "--api-key") {
        o.api_key = v;
      } else if (key == "--connections") {
        o.connections = std::stoul(v);
      } else if (key == "--users-per-org") {
        o.users_per_org = std::stoul(v);
      } else if (key == "--services") {
        o.services = std::stoul(v);
      } else if (key == "--org-base") {
        o.org_base = std::stoull(v);
      } else if (key == "--rate") {
        o.rate = std::stod(v);
      } else if (key == "--rates") {
        o.rates.clear();
        std::size_t pos = 0;
        while (pos <= v.size()) {
          const std::size_t comma = std::min(v.find(',', pos), v.size());
          o.rates.push_back(std::stod(v.substr(pos, comma - pos)));
          if (o.rates.back() <= 0) throw std::invalid_argument("rate");
          pos = comma + 1;
        }
      } else if (key == "--producers") {
        o.producers = std::stoul(v);
      } else if (key == "--batch") {
        o.batch = std::stoul(v);
      } else if (key == "--payload") {
        o.payload = std::stoul(v);
      } else if (key == "--duration") {
        o.duration = std::stod(v);
      } else if (key == "--warmup") {
        o.warmup = std::stod(v);
      } else if (key == "--drain") {
        o.drain = std::stod(v);
      } else if (key == "--concurrency") {
        o.concurrency = std::stoul(v);
      } else if (key == "--connect-rate") {
        o.connect_rate = std::stod(v);
      } else if (key == "--settle") {
        o.settle = std::stod(v);
      } else if (key == "--hold") {
        o.hold = std::stod(v);
      } else if (key == "--expect-events") {
        o.expect_events = std::stoull(v);
      } else if (key == "--server-pid") {
        o.server_pid = std::stoi(v);
      } else if (key == "--proc-index") {
        o.proc_index = std::stoul(v);
      } else if (key == "--label") {
        o.label = v;
      } else {
        error = "unknown option: " + key;
        return false;
      }
    } catch (const std::exception&) {
      error = key + ": not a number: " + v;
      return false;
    }
  }
  if (o.scenario == Scenario::kPublish && (o.producers == 0 || o.peer == Peer::kNats)) {
    error = "publish needs --producers > 0 and an HTTP publish endpoint (streamgate, node-ws)";
    return false;
  }
  if ((o.connections == 0 && o.scenario != Scenario::kPublish) || o.services == 0 ||
      o.services > 64 || o.batch == 0 || o.rate <= 0 || o.concurrency == 0) {
    error = "--connections, --services (1..64), --batch, --rate and --concurrency must be positive";
    return false;
  }
  if (o.peer != Peer::kNats && o.secret.empty()) {
    error = "--secret is required for streamgate and node-ws";
    return false;
  }
  if (o.scenario == Scenario::kChurn) o.connections = o.concurrency;
  return true;
}

}  // namespace sgb

int main(int argc, char** argv) {
  if (argc >= 2 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
    std::cout << sgb::kUsage;
    return 0;
  }
  sgb::Options options;
  std::string error;
  if (!sgb::parse_options(argc, argv, options, error)) {
    std::cerr << "streamgate-bench: " << error << "\n\n" << sgb::kUsage;
    return 2;
  }
  sgb::Bench bench(std::move(options));
  return bench.run();
}
