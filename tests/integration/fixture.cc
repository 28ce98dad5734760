#include "fixture.h"

#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <functional>
#include <iterator>
#include <set>
#include <thread>

namespace vusw::it {

namespace {
using std::chrono::milliseconds;

DaemonConfig bench_config(const std::vector<std::string>& spare) {
  DaemonConfig cfg;
  cfg.servers = {"a", "b"};
  cfg.servers.insert(cfg.servers.end(), spare.begin(), spare.end());
  return cfg;
}

// The value once it stopped changing for half a second (grace periods end).
size_t settled(const std::function<size_t()>& count) {
  size_t last = count();
  for (int stable = 0, rounds = 0; stable < 5 && rounds < 50; ++rounds) {
    std::this_thread::sleep_for(milliseconds(100));
    size_t now = count();
    stable = now == last ? stable + 1 : 0;
    last = now;
  }
  return last;
}
}  // namespace

std::unique_ptr<FakeFrontend> attach(const Daemon& d, const std::string& port, FrontendOptions opt) {
  auto fe = FakeFrontend::connect(d.socket_path(port), opt);
  if (!fe) return nullptr;
  if (!fe->bring_up()) {
    for (const std::string& a : fe->anomalies()) MESSAGE("port " << port << ": " << a);
    return nullptr;
  }
  return fe;
}

std::unique_ptr<FakeFrontend> handshaken(const Daemon& d, const std::string& port, FrontendOptions opt) {
  auto fe = FakeFrontend::connect(d.socket_path(port), opt);
  if (!fe || !fe->handshake()) return nullptr;
  return fe;
}

bool learned_pair(FakeFrontend& p, const Mac& mp, FakeFrontend& q, const Mac& mq) {
  std::this_thread::sleep_for(milliseconds(300));
  if (!pair_switches(p, mp, q, mq)) return false;
  std::this_thread::sleep_for(milliseconds(100));
  p.poll_rx();
  q.poll_rx();
  return true;
}

Bench::Bench(const std::vector<std::string>& spare) : d(bench_config(spare)) {
  a = attach(d, "a");
  b = attach(d, "b");
  REQUIRE_MESSAGE(a, "port a did not come up:\n" << d.log_tail());
  REQUIRE_MESSAGE(b, "port b did not come up:\n" << d.log_tail());
  REQUIRE_MESSAGE(healthy(), "a <-> b does not switch before the test:\n" << d.log_tail());
}

bool Bench::healthy() {
  PumpResult r = exchange(*a, kMacA, *b, kMacB);
  bool ok = r.completed && r.flows[0].corrupt == 0 && r.flows[1].corrupt == 0;
  if (!ok)
    MESSAGE("a <-> b: " << r.summary() << "\na: " << d.port("a").dump() << "\nb: " << d.port("b").dump()
                        << "\n" << d.log_tail());
  return ok;
}

uint64_t Bench::guest_faults(const std::string& name) const {
  nlohmann::json p = d.port(name);
  return json_u64(p, "broken_queues") + json_sum(p, "drops");
}

bool Bench::error_counted(const std::string& name, uint64_t before) const {
  return wait_until([&] { return errors(name) > before; }, milliseconds(2000));
}

void finish(Daemon& d) {
  CHECK_MESSAGE(d.alive(), "vuswitchd died during the test:\n" << d.log_tail());
  int rc = d.stop();
  CHECK_MESSAGE(rc == 0, "vuswitchd exit status " << rc << ":\n" << d.log_tail());
}

void check_exact_counters(const Daemon& d, const std::string& name, const PortCounts& want) {
  bool settled = wait_until(
      [&] {
        auto p = d.port(name);
        return json_u64(p, "rx_packets") == want.rx_pkts && json_u64(p, "tx_packets") == want.tx_pkts;
      },
      milliseconds(3000));
  nlohmann::json p = d.port(name);
  INFO("port " << name << ": " << p.dump());
  CHECK(settled);
  CHECK(json_u64(p, "rx_packets") == want.rx_pkts);
  CHECK(json_u64(p, "tx_packets") == want.tx_pkts);
  CHECK(json_u64(p, "rx_bytes") == want.rx_bytes);
  CHECK(json_u64(p, "tx_bytes") == want.tx_bytes);
  CHECK(json_sum(p, "drops") == 0);
  CHECK(json_sum(p, "protocol_errors") == 0);
  CHECK(json_u64(p, "broken_queues") == 0);

  auto m = d.scrape();
  REQUIRE(m);
  std::map<std::string, std::string> l{{"port", name}};
  CHECK(m->sum("vusw_port_rx_packets_total", l) == double(want.rx_pkts));
  CHECK(m->sum("vusw_port_tx_packets_total", l) == double(want.tx_pkts));
  CHECK(m->sum("vusw_port_rx_bytes_total", l) == double(want.rx_bytes));
  CHECK(m->sum("vusw_port_tx_bytes_total", l) == double(want.tx_bytes));
  CHECK(m->sum("vusw_port_drops_total", l) == 0);
}

uint64_t broken(const nlohmann::json& port, const std::string& reason) {
  if (!port.is_object() || !port.contains("broken") || !port["broken"].contains(reason)) return 0;
  return port["broken"][reason].get<uint64_t>();
}

namespace {

// What the daemon's fds point at (socket:[...], /memfd:..., anon_inode:[eventfd], ...).
std::multiset<std::string> fd_targets(const Daemon& d) {
  std::multiset<std::string> targets;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(d.pid()) + "/fd", ec))
    targets.insert(std::filesystem::read_symlink(e.path(), ec).string());
  return targets;
}

// Targets in `now` that `then` had fewer of, for a leak message.
std::string extra_targets(const std::multiset<std::string>& then, const std::multiset<std::string>& now) {
  std::vector<std::string> extra;
  std::set_difference(now.begin(), now.end(), then.begin(), then.end(), std::back_inserter(extra));
  std::string text;
  for (const auto& t : extra) text += " " + t;
  return text.empty() ? " (none: fds were closed and others opened)" : text;
}

}  // namespace

long env_long(const char* name, long fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtol(v, nullptr, 10) : fallback;
}

LeakBaseline::LeakBaseline(const Daemon& d)
    : d_(d), fds0_(settled([&] { return d.fd_count(); })), maps0_(settled([&] { return d.maps_count(); })),
      targets0_(fd_targets(d)) {}

void LeakBaseline::wait_back() {
  fds_back_ = wait_until([&] { return (fds_ = d_.fd_count()) == fds0_; }, milliseconds(5000));
  maps_back_ = wait_until([&] { return (maps_ = d_.maps_count()) == maps0_; }, milliseconds(5000));
  if (!fds_back_) extra_ = extra_targets(targets0_, fd_targets(d_));
}

void LeakBaseline::check() const {
  CHECK_MESSAGE(fds_back_, "daemon fds " << fds_ << " vs " << fds0_ << " at the baseline; new:" << extra_);
  CHECK_MESSAGE(maps_back_, "daemon mappings " << maps_ << " vs " << maps0_ << " at the baseline");
}

std::string LeakBaseline::report() const {
  return "fds " + std::to_string(fds0_) + " -> " + std::to_string(fds_) + ", mappings " + std::to_string(maps0_) +
         " -> " + std::to_string(maps_);
}

DpdkMemory dpdk_memory(const Daemon& d) {
  auto m = d.scrape();
  REQUIRE(m.has_value());
  REQUIRE(m->has("vusw_dpdk_heap_allocated_bytes"));
  return {static_cast<uint64_t>(m->sum("vusw_dpdk_heap_allocated_bytes")),
          static_cast<uint64_t>(m->sum("vusw_mbufs_in_use"))};
}

ResourceBaseline::ResourceBaseline(const Daemon& d)
    : d_(d), leaks_(d), rss0_(rss_kib(d)), dpdk0_(dpdk_memory(d)) {}

void ResourceBaseline::wait_back() {
  leaks_.wait_back();
  rss1_ = rss_kib(d_);
  // Buffers still in flight when the traffic stopped (lent TX frames come back
  // within a grace period): give them a moment.
  wait_until([&] { return (dpdk1_ = dpdk_memory(d_)).mbufs_in_use <= dpdk0_.mbufs_in_use; }, milliseconds(3000));
}

void ResourceBaseline::check() const {
  leaks_.check();
  CHECK(dpdk1_.heap_bytes <= dpdk0_.heap_bytes);
  CHECK(dpdk1_.mbufs_in_use <= dpdk0_.mbufs_in_use);
  const size_t pool_kib = size_t(d_.scrape()->sum("vusw_mbufs")) * 5 / 2;  // ~2.5 KiB per buffer
  if (!sanitized(d_)) CHECK_MESSAGE(rss1_ < rss0_ + 8 * 1024 + pool_kib, report());
}

std::string ResourceBaseline::report() const {
  return leaks_.report() + ", RSS " + std::to_string(rss0_ / 1024) + " -> " + std::to_string(rss1_ / 1024) +
         " MiB, DPDK heap " + std::to_string(dpdk0_.heap_bytes / 1024) + " -> " +
         std::to_string(dpdk1_.heap_bytes / 1024) + " KiB, mbufs in use " + std::to_string(dpdk0_.mbufs_in_use) +
         " -> " + std::to_string(dpdk1_.mbufs_in_use);
}

size_t rss_kib(const Daemon& d) {
  std::ifstream in("/proc/" + std::to_string(d.pid()) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
  return 0;
}

bool sanitized(const Daemon& d) {
  // GCC links ASan's runtime as libasan.so; clang links it into the binary.
  std::ifstream in("/proc/" + std::to_string(d.pid()) + "/maps");
  std::stringstream maps;
  maps << in.rdbuf();
  if (maps.str().find("libasan") != std::string::npos) return true;
  std::ifstream exe("/proc/" + std::to_string(d.pid()) + "/exe", std::ios::binary);
  const std::string binary((std::istreambuf_iterator<char>(exe)), std::istreambuf_iterator<char>());
  return binary.find("__asan_init") != std::string::npos;
}

void check_lossless(const MovingTraffic& t) {
  INFO(t.summary());
  CHECK_FALSE(t.stalled());
  CHECK(t.to_peer().sent > 0);
  CHECK(t.to_mover().sent > 0);
  CHECK(t.to_peer().received == t.to_peer().sent);
  CHECK(t.to_mover().received == t.to_mover().sent);
  CHECK(t.to_peer().corrupt == 0);
  CHECK(t.to_mover().corrupt == 0);
  CHECK(t.to_peer().rx_errors == 0);
  CHECK(t.to_mover().rx_errors == 0);
}

std::string ctl_binary() {
  const char* env = std::getenv("VUSWITCHCTL");
  if (env != nullptr && *env != '\0') return env;
  return (std::filesystem::path(daemon_binary()).parent_path() / "vuswitchctl").string();
}

CtlRun run_ctl(const std::string& args) {
  static int n = 0;
  const std::string err_path = "/tmp/vusw-ctl-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
  CtlRun r;
  FILE* p = ::popen((ctl_binary() + " " + args + " 2>" + err_path).c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, got);
  const int w = ::pclose(p);
  r.status = WIFEXITED(w) ? WEXITSTATUS(w) : -1;
  if (FILE* e = std::fopen(err_path.c_str(), "r")) {
    while ((got = std::fread(buf, 1, sizeof(buf), e)) > 0) r.err.append(buf, got);
    std::fclose(e);
  }
  std::remove(err_path.c_str());
  return r;
}

CtlRun run_ctl(const Daemon& d, const std::string& args) { return run_ctl("--control " + d.control_path() + " " + args); }

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

nlohmann::json ctl(const Daemon& d, const nlohmann::json& request) {
  auto r = d.ctl(request);
  REQUIRE_MESSAGE(r, "no JSON answer to " << request.dump());
  CHECK_MESSAGE((*r)["version"] == 1, "no protocol version in " << r->dump());
  return *r;
}

std::string error_code(const nlohmann::json& reply) {
  return reply.contains("error") ? reply["error"].value("code", "") : "";
}

}  // namespace vusw::it
