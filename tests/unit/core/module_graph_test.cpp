// The module graph of docs/architecture.md, checked against the includes in src/: a module
// includes only the modules its row allows, so the connection core (net) never learns of an
// endpoint and no endpoint includes another or the server that wires them.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>

namespace {

namespace fs = std::filesystem;
using Modules = std::set<std::string>;

// The modules every module below the endpoints may use: the domain (and core beneath it).
const Modules kDomain = {"core",   "config", "log",  "metrics", "auth",   "protocol",
                         "broker", "hub",    "chat", "upload",  "tenancy"};

// The module a `#include "module/file.hpp"` line names; empty for any other line. Not
// std::regex: with GCC 12 under ASan its inlined state machine trips -Wmaybe-uninitialized.
std::string included_module(std::string_view line) {
  while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
  constexpr std::string_view kInclude = "#include \"";
  if (!line.starts_with(kInclude)) return {};
  line.remove_prefix(kInclude.size());
  const auto slash = line.find('/');
  if (slash == std::string_view::npos || slash == 0) return {};
  const std::string_view name = line.substr(0, slash);
  for (const char c : name) {
    if ((c < 'a' || c > 'z') && c != '_') return {};
  }
  return std::string(name);
}

Modules with(Modules base, const Modules& more) {
  base.insert(more.begin(), more.end());
  return base;
}

// What each module may include besides itself (docs/architecture.md, "Modules").
const std::map<std::string, Modules>& allowed() {
  static const std::map<std::string, Modules> table = {
      {"core", {}},
      {"config", {"core"}},
      {"log", {"core"}},
      {"metrics", {"core"}},
      {"auth", {"core"}},
      {"protocol", {"core"}},
      {"broker", {"core", "log", "protocol"}},
      {"hub", {"core", "broker", "log", "metrics", "protocol"}},
      {"chat", {"core", "broker", "metrics", "protocol"}},
      {"upload", {"core", "log"}},
      {"tenancy", {"core", "metrics"}},
      {"net", {"core", "log", "metrics"}},
      {"node", with(kDomain, {"net"})},
      {"stream", with(kDomain, {"net", "node"})},
      {"uploads", with(kDomain, {"net", "node"})},
      {"api", with(kDomain, {"net", "node"})},
      {"server", with(kDomain, {"net", "node", "stream", "uploads", "api"})},
      {"app", with(kDomain, {"net", "node", "server"})},
  };
  return table;
}

TEST(ModuleGraph, EveryIncludeFollowsTheTable) {
  const fs::path src = fs::path(STREAMGATE_SOURCE_DIR) / "src";
  std::size_t checked = 0;
  for (const auto& dir : fs::directory_iterator(src)) {
    if (!dir.is_directory()) continue;
    const std::string module = dir.path().filename().string();
    const auto rule = allowed().find(module);
    ASSERT_NE(rule, allowed().end()) << "src/" << module << " is not in the module table";
    for (const auto& file : fs::directory_iterator(dir.path())) {
      std::ifstream in(file.path());
      std::string line;
      while (std::getline(in, line)) {
        const std::string target = included_module(line);
        if (target.empty()) continue;
        ++checked;
        if (target == module) continue;
        EXPECT_TRUE(rule->second.contains(target))
            << file.path().lexically_relative(src).string() << " includes " << target
            << "/, which module " << module << " may not use";
      }
    }
  }
  // The walk found the sources (a wrong path would pass vacuously).
  EXPECT_GT(checked, 200u);
}

TEST(ModuleGraph, TheTableHasNoCycles) {
  // Depth-first over the allowed edges: a module reached again while on the path is a cycle.
  std::map<std::string, int> state;  // 0 new, 1 on the path, 2 done
  std::function<bool(const std::string&)> acyclic = [&](const std::string& m) {
    if (state[m] == 1) return false;
    if (state[m] == 2) return true;
    state[m] = 1;
    for (const auto& next : allowed().at(m)) {
      if (!acyclic(next)) return false;
    }
    state[m] = 2;
    return true;
  };
  for (const auto& [module, deps] : allowed()) EXPECT_TRUE(acyclic(module)) << module;
}

}  // namespace
