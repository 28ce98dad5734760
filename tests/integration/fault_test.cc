// Faults and exhaustion (issue 12): front-ends that die part-way through a message or a
// reply, front-ends that dribble their messages a byte at a time, a daemon out of file
// descriptors, guests that hoard RX buffers or flood kicks, a packet-buffer pool that
// runs dry, and the largest split ring.
// Each case checks that the daemon keeps running, that the reason is counted, that
// another pair of guests keeps lossless traffic (Background) and, where a session ends,
// that its fds and mappings go.
#include <doctest/doctest.h>
#include <dirent.h>
#include <poll.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

uint64_t reason_count(const Daemon& d, const std::string& port, const std::string& key, const std::string& reason) {
  nlohmann::json p = d.port(port);
  if (!p.is_object() || !p.contains(key) || !p[key].contains(reason)) return 0;
  return p[key][reason].get<uint64_t>();
}

bool port_waiting(const Daemon& d, const std::string& port) {
  return wait_until([&] { return d.port(port).value("state", "") == "waiting"; }, milliseconds(3000));
}

size_t occurrences(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

// A guest life on `port` with traffic to `peer`, to prove the port works again.
bool port_works(const Daemon& d, const std::string& port, const std::string& peer) {
  auto x = attach(d, port);
  auto y = attach(d, peer);
  return x && y && pair_switches(*x, kMacX, *y, mac(0x2e), 8);
}

// Frames flooded to a and b while other guests learned their MACs are taken off
// their RX rings, so Background sees only its own.
void drain_pair(Bench& bench) {
  std::this_thread::sleep_for(milliseconds(100));
  bench.a->poll_rx();
  bench.b->poll_rx();
}

// ---- a PMD core that stops ----

// The thread of `d` named `name` (/proc/PID/task/TID/comm), or -1.
pid_t thread_named(const Daemon& d, const std::string& name) {
  const std::string tasks = "/proc/" + std::to_string(d.pid()) + "/task";
  for (const auto& entry : std::filesystem::directory_iterator(tasks)) {
    std::ifstream in(entry.path() / "comm");
    std::string comm;
    if (std::getline(in, comm) && comm == name) return pid_t(std::stol(entry.path().filename().string()));
  }
  return -1;
}

// One thread of the daemon held still (ptrace: only that thread stops, the others run
// on), as if the kernel had taken its CPU away for as long as the test likes.
class FrozenThread {
 public:
  explicit FrozenThread(pid_t tid) : tid_(tid) {
    int status = 0;
    frozen_ = tid > 0 && ::ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) == 0 &&
              ::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) == 0 && ::waitpid(tid, &status, __WALL) == tid &&
              WIFSTOPPED(status);
  }
  ~FrozenThread() { thaw(); }
  FrozenThread(const FrozenThread&) = delete;
  FrozenThread& operator=(const FrozenThread&) = delete;
  bool frozen() const { return frozen_; }
  void thaw() {
    if (frozen_) ::ptrace(PTRACE_DETACH, tid_, nullptr, nullptr);
    frozen_ = false;
  }

 private:
  pid_t tid_;
  bool frozen_ = false;
};

// ---- front-end dies part-way ----

// Each kill leaves port x to the next front-end, fds and mappings at the baseline.
void expect_recovered(Bench& bench, LeakBaseline& baseline) {
  CHECK(bench.d.alive());
  CHECK(port_waiting(bench.d, "x"));
  baseline.wait_back();
  baseline.check();
}

// ---- a relay that dribbles ----

ssize_t recv_with_fds(int fd, std::span<std::byte> buf, std::vector<UniqueFd>& fds) {
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * 16)] = {};
  iovec iov{buf.data(), buf.size()};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctrl;
  mh.msg_controllen = sizeof(ctrl);
  ssize_t n = ::recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); n > 0 && c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; ++i) {
      int f;
      std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.emplace_back(f);
    }
  }
  return n;
}

std::vector<int> numbers(const std::vector<UniqueFd>& fds) {
  std::vector<int> out;
  for (const UniqueFd& f : fds) out.push_back(f.get());
  return out;
}

// Sits between a fake front-end and the daemon: everything the front-end writes reaches
// the daemon one byte per sendmsg (its fds on the first byte, as SCM_RIGHTS allows),
// `pause` apart; replies go back as they come. What a slow front-end looks like.
class Dribbler {
 public:
  Dribbler(const std::string& path, milliseconds pause) : pause_(pause) {
    auto conn = VhostConn::connect(path, milliseconds(5000));
    REQUIRE(conn);
    daemon_ = std::move(*conn);
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    relay_ = VhostConn(UniqueFd(sv[0]));
    frontend_.reset(sv[1]);
    th_ = std::thread([this] { run(); });
  }
  ~Dribbler() {
    stop_ = true;
    th_.join();
  }
  // The front-end's end of the relay (once).
  VhostConn frontend() { return VhostConn(std::move(frontend_)); }
  size_t writes() const { return writes_; }

 private:
  void run() {
    while (!stop_) {
      pollfd p[2] = {{relay_.fd(), POLLIN, 0}, {daemon_.fd(), POLLIN, 0}};
      if (::poll(p, 2, 10) <= 0) continue;
      if ((p[0].revents && !dribble()) || (p[1].revents && !pass_back())) return;
    }
  }
  bool dribble() {
    std::array<std::byte, 8192> buf;
    std::vector<UniqueFd> fds;
    ssize_t n = recv_with_fds(relay_.fd(), buf, fds);
    if (n <= 0) return false;
    const std::vector<int> first = numbers(fds);
    for (ssize_t i = 0; i < n && !stop_; ++i) {
      if (!daemon_.send_raw(std::span(buf).subspan(size_t(i), 1), i == 0 ? std::span<const int>(first) : std::span<const int>()))
        return false;
      ++writes_;
      std::this_thread::sleep_for(pause_);
    }
    return true;
  }
  bool pass_back() {
    std::array<std::byte, 8192> buf;
    std::vector<UniqueFd> fds;
    ssize_t n = recv_with_fds(daemon_.fd(), buf, fds);
    return n > 0 && relay_.send_raw(std::span(buf).first(size_t(n)), numbers(fds));
  }

  milliseconds pause_;
  VhostConn daemon_{UniqueFd()}, relay_{UniqueFd()};
  UniqueFd frontend_;
  std::atomic<bool> stop_ = false;
  std::atomic<size_t> writes_ = 0;
  std::thread th_;
};

// Round trip of one control-socket request.
milliseconds ctl_latency(const Daemon& d) {
  auto t0 = Clock::now();
  auto r = d.ctl({{"cmd", "version"}});
  CHECK(r);
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
}

// ---- fd exhaustion ----

// The RLIMIT_NOFILE that leaves exactly `spare` fd numbers free for the process (the
// kernel hands out the lowest free number below the limit; numbers above it stay valid).
rlim_t limit_leaving(pid_t pid, int spare) {
  std::set<int> open;
  DIR* dir = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  REQUIRE(dir != nullptr);
  while (dirent* e = ::readdir(dir))
    if (e->d_name[0] != '.') open.insert(std::atoi(e->d_name));
  ::closedir(dir);
  int fd = 0;
  for (int free = 0;; ++fd)
    if (!open.count(fd) && ++free == spare) break;
  return rlim_t(fd) + 1;
}

// CPU clock ticks the daemon's main thread (the control thread) used so far.
uint64_t control_thread_ticks(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));  // fields from 3 (state) on
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return utime + stime;
}

// A front-end that connected and had GET_FEATURES answered (one fd in the daemon:
// the bring-up's CALL/ERR eventfds would need more); nullopt if the daemon hung up.
std::optional<VhostConn> answered(const Daemon& d, const std::string& port) {
  auto conn = VhostConn::connect(d.socket_path(port), milliseconds(5000));
  REQUIRE(conn);
  if (!conn->send(uint32_t(Req::GetFeatures), kVersion1, {})) return std::nullopt;
  if (conn->recv(milliseconds(2000)).status != RecvStatus::Ok) return std::nullopt;
  return conn;
}

bool still_answers(VhostConn& conn) {
  return conn.send(uint32_t(Req::GetFeatures), kVersion1, {}) && conn.recv(milliseconds(2000)).status == RecvStatus::Ok;
}

void set_fd_limit(pid_t pid, rlim_t soft, rlim_t hard) {
  rlimit l{soft, hard};
  REQUIRE(::prlimit(pid, RLIMIT_NOFILE, &l, nullptr) == 0);
}

}  // namespace

TEST_CASE("front-end killed part-way: mid-message, before the ADD_MEM_REG ack, during GET_VRING_BASE") {
  Bench bench({"x", "c"});
  REQUIRE(port_works(bench.d, "x", "c"));  // warm-up: first-use allocations are not leaks
  REQUIRE(port_waiting(bench.d, "x"));
  REQUIRE(port_waiting(bench.d, "c"));
  LeakBaseline baseline(bench.d);
  drain_pair(bench);  // the warm-up taught the switch x's and c's MACs: no floods from now on
  Background traffic(*bench.a, kMacA, *bench.b, kMacB);

  SUBCASE("header and half the payload, then close") {
    auto fe = handshaken(bench.d, "x");
    REQUIRE(fe);
    const uint64_t truncated = reason_count(bench.d, "x", "protocol_errors", "truncated");
    VringAddr addr{kTxRing, 0, 0x1000, 0x2000, 0x3000, 0};
    MsgHeader h{uint32_t(Req::SetVringAddr), kVersion1, sizeof(addr)};
    std::vector<std::byte> wire(sizeof(h) + sizeof(addr) / 2);
    std::memcpy(wire.data(), &h, sizeof(h));
    std::memcpy(wire.data() + sizeof(h), &addr, sizeof(addr) / 2);
    REQUIRE(fe->conn().send_raw(wire));
    fe.reset();
    CHECK(wait_until([&] { return reason_count(bench.d, "x", "protocol_errors", "truncated") == truncated + 1; },
                     milliseconds(3000)));
    CHECK(occurrences(bench.d.log(), "connection closed part-way through a message") == 1);
  }
  SUBCASE("ADD_MEM_REG with NEED_REPLY, close without reading the ack") {
    auto fe = attach(bench.d, "x");
    REQUIRE(fe);
    MemRegion extra(0x100000000, 2 * 1024 * 1024);
    MemRegMsg m{0, extra.desc()};
    REQUIRE(fe->conn().send(uint32_t(Req::AddMemReg), kVersion1 | kFlagNeedReply, bytes_of(m), std::array{extra.fd()}));
    fe.reset();
  }
  SUBCASE("GET_VRING_BASE while the ring carries traffic, close before the reply") {
    auto fe = attach(bench.d, "x");
    auto c = attach(bench.d, "c");
    REQUIRE(fe);
    REQUIRE(c);
    REQUIRE(pair_switches(*fe, kMacX, *c, mac(0x2e), 8));
    for (uint32_t i = 0; i < 64; ++i) fe->send_frame(make_frame(mac(0x2e), kMacX, i, 200), TxLayout::Single);
    fe->kick(kTxRing);
    VringState s{kTxRing, 0};
    REQUIRE(fe->conn().send(uint32_t(Req::GetVringBase), kVersion1, bytes_of(s)));
    fe.reset();
    c.reset();
    CHECK(port_waiting(bench.d, "c"));
  }
  expect_recovered(bench, baseline);
  CHECK(port_works(bench.d, "x", "c"));
  check_lossless(traffic.finish());
  finish(bench.d);
}

TEST_CASE("a front-end that sends one byte per write, fds on the first byte: full bring-up, then traffic") {
  Bench bench({"x"});
  Background traffic(*bench.a, kMacA, *bench.b, kMacB);
  Dribbler relay(bench.d.socket_path("x"), milliseconds(1));
  FakeFrontend x(relay.frontend());
  REQUIRE(x.bring_up());
  CHECK(relay.writes() > 500);  // the whole bring-up went byte by byte
  check_lossless(traffic.finish());
  CHECK(pair_switches(x, kMacX, *bench.a, kMacA));
  CHECK(bench.errors("x") == 0);
  CHECK(x.anomalies().empty());
  finish(bench.d);
}

TEST_CASE("a front-end stalled part-way through a message blocks no one, and may finish it later") {
  Bench bench({"x", "y"});
  auto conn = VhostConn::connect(bench.d.socket_path("x"), milliseconds(5000));
  REQUIRE(conn);
  MsgHeader h{uint32_t(Req::GetFeatures), kVersion1, 0};
  auto wire = bytes_of(h);
  REQUIRE(conn->send_raw(wire.first(5)));
  const auto sent = Clock::now();
  // The control thread answers the control socket and another port's front-end meanwhile.
  for (int i = 0; i < 5; ++i) CHECK(ctl_latency(bench.d) < milliseconds(300));
  auto t0 = Clock::now();
  auto y = attach(bench.d, "y");
  CHECK(y);
  CHECK(Clock::now() - t0 < milliseconds(1000));
  std::this_thread::sleep_for(milliseconds(2000) - (Clock::now() - sent));  // a long stall
  REQUIRE(conn->send_raw(wire.subspan(5)));
  RecvResult r = conn->recv(milliseconds(2000));
  REQUIRE(r.status == RecvStatus::Ok);
  CHECK(r.msg.hdr.request == uint32_t(Req::GetFeatures));
  CHECK(r.msg.payload.size() == sizeof(uint64_t));
  CHECK(bench.errors("x") == 0);
  CHECK(bench.healthy());
  finish(bench.d);
}

TEST_CASE("out of fds: new front-ends and control clients refused without spinning, sessions unharmed, recovery") {
  Bench bench({"x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7"});
  const pid_t pid = bench.d.pid();
  rlimit old{};
  REQUIRE(::prlimit(pid, RLIMIT_NOFILE, nullptr, &old) == 0);
  Background traffic(*bench.a, kMacA, *bench.b, kMacB);
  set_fd_limit(pid, limit_leaving(pid, 3), old.rlim_max);  // room for three more sockets
  std::vector<VhostConn> sessions;
  std::string refused;
  for (int i = 0; i < 8 && refused.empty(); ++i) {
    auto conn = answered(bench.d, "x" + std::to_string(i));
    if (conn) sessions.push_back(std::move(*conn));
    else refused = "x" + std::to_string(i);
  }
  REQUIRE_MESSAGE(!refused.empty(), "no front-end was refused:\n" << bench.d.log_tail());
  CHECK(sessions.size() == 3);
  // A second refusal: counted again, logged once.
  CHECK_FALSE(answered(bench.d, refused));
  // The control socket too: its client is hung up on at once and counted.
  const auto asked = Clock::now();
  CHECK_FALSE(bench.d.ctl({{"cmd", "version"}}).has_value());
  CHECK(Clock::now() - asked < milliseconds(1000));
  // The refused connections do not keep the control thread busy (EMFILE on a
  // level-triggered listening socket would spin it at 100 %).
  const uint64_t ticks = control_thread_ticks(pid);
  std::this_thread::sleep_for(milliseconds(1000));
  CHECK(control_thread_ticks(pid) - ticks < 20);
  for (auto& s : sessions) CHECK(still_answers(s));
  // A session closes: its fd lets the next front-end in, the limit still low.
  sessions.pop_back();
  std::this_thread::sleep_for(milliseconds(300));
  auto again = answered(bench.d, refused);
  CHECK(again);
  set_fd_limit(pid, old.rlim_cur, old.rlim_max);
  CHECK(reason_count(bench.d, refused, "protocol_errors", "fd_limit") == 2);
  CHECK(occurrences(bench.d.log(), "refusing a front-end: the daemon is out of file descriptors") == 1);
  CHECK(occurrences(bench.d.log(), "control socket: refusing a connection: the daemon is out of file descriptors") == 1);
  const auto version = bench.d.ctl({{"cmd", "version"}});
  REQUIRE(version);
  CHECK((*version)["control_socket"]["dropped"]["fd_limit"] == 1);
  sessions.clear();
  again.reset();
  for (int i = 0; i < 8; ++i) CHECK(port_waiting(bench.d, "x" + std::to_string(i)));
  check_lossless(traffic.finish());  // before new guests: their first frames flood to a and b
  CHECK(port_works(bench.d, "x6", "x7"));
  finish(bench.d);
}

TEST_CASE("a guest that never takes its RX frames: drops counted no_rx_buffer, others lossless") {
  Bench bench({"x", "c"});
  FrontendOptions small;
  small.ring_size = 16;
  auto x = attach(bench.d, "x", small);
  auto c = attach(bench.d, "c");
  REQUIRE(x);
  REQUIRE(c);
  REQUIRE(pair_switches(*x, kMacX, *c, mac(0x2e), 4));  // both MACs learned
  drain_pair(bench);
  Background traffic(*bench.a, kMacA, *bench.b, kMacB);
  const uint64_t delivered0 = json_u64(bench.d.port("x"), "tx_packets");
  const uint64_t drops0 = json_sum(bench.d.port("x"), "drops");  // frames flooded before x's rings ran
  // x posted 16 RX buffers and will never look at them again.
  constexpr uint32_t kSent = 100;
  for (uint32_t i = 0; i < kSent; ++i) {
    REQUIRE(c->send_frame(make_frame(kMacX, mac(0x2e), i, 100), TxLayout::Single));
    c->kick(kTxRing);
    if (i % 32 == 31) c->reclaim_tx();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  auto delivered = [&] { return json_u64(bench.d.port("x"), "tx_packets") - delivered0; };
  CHECK(wait_until([&] { return delivered() + reason_count(bench.d, "x", "drops", "no_rx_buffer") == kSent; },
                   milliseconds(3000)));
  nlohmann::json p = bench.d.port("x");
  INFO(p.dump());
  CHECK(delivered() == small.ring_size);
  CHECK(reason_count(bench.d, "x", "drops", "no_rx_buffer") == kSent - small.ring_size);
  CHECK(json_sum(p, "drops") - drops0 == kSent - small.ring_size);  // no other reason
  check_lossless(traffic.finish());
  CHECK(x->wait_rx(small.ring_size, milliseconds(2000)).size() == small.ring_size);  // and x may still take them
  finish(bench.d);
}

TEST_CASE("packet buffers run out while a PMD core stalls: drops counted no_mbuf, every buffer back, traffic after") {
  // 511 buffers; a on PMD 0 sends to b on PMD 1 (both on CPU 1), whose thread is held
  // still: every frame a sends is copied into a buffer that waits in PMD 1's hand-off
  // ring (room for 1024) until the pool is empty, and the rest are dropped as no_mbuf.
  DaemonConfig cfg;
  cfg.servers = {"a", "b"};
  cfg.lcores = "0@0,1@1,2@1";
  cfg.extra_args = {"--mbufs", "511", "--pin", "a=0", "--pin", "b=1", "--rebalance-interval", "0"};
  Daemon d(cfg);
  FrontendOptions big;
  big.ring_size = 1024;  // b can take every buffer the pool holds at once
  auto a = attach(d, "a");
  auto b = attach(d, "b", big);
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(learned_pair(*a, kMacA, *b, kMacB));
  const DpdkMemory before = dpdk_memory(d);
  const nlohmann::json a0 = d.port("a"), b0 = d.port("b");

  const nlohmann::json pmds = d.ctl({{"cmd", "show_pmd"}}).value();
  REQUIRE(pmds["pmds"].size() == 2);
  const int lcore = pmds["pmds"][1]["lcore"].get<int>();
  const pid_t tid = thread_named(d, "rte-worker-" + std::to_string(lcore));
  REQUIRE_MESSAGE(tid > 0, "no thread rte-worker-" << lcore);
  constexpr uint32_t kSent = 2000;
  {
    FrozenThread stalled(tid);
    REQUIRE(stalled.frozen());
    for (uint32_t i = 0; i < kSent; ++i) {
      while (!a->send_frame(make_frame(kMacB, kMacA, i, 60), TxLayout::Single)) {  // ring full: let it drain
        a->kick(kTxRing);
        std::this_thread::sleep_for(std::chrono::microseconds(100));
        a->reclaim_tx();
      }
      if (i % 32 == 31) a->kick(kTxRing);
    }
    a->kick(kTxRing);
    // Every frame taken off a's ring: switched (rx_packets) or dropped.
    auto taken = [&] {
      return json_u64(d.port("a"), "rx_packets") - json_u64(a0, "rx_packets") + reason_count(d, "a", "drops", "no_mbuf");
    };
    CHECK(wait_until([&] { return taken() == kSent; }, milliseconds(5000)));
    CHECK(dpdk_memory(d).mbufs_in_use >= 400);  // the pool is (nearly) all in the hand-off ring
  }
  // PMD 1 runs again and hands b what waited; the rest were counted on a.
  const uint64_t no_mbuf = reason_count(d, "a", "drops", "no_mbuf");
  INFO("no_mbuf on a: " << no_mbuf << "; a: " << d.port("a").dump() << "; b: " << d.port("b").dump());
  CHECK(no_mbuf > 0);
  CHECK(no_mbuf < kSent - 400);
  const auto got = b->wait_rx(kSent - no_mbuf, milliseconds(5000));
  CHECK(got.size() == kSent - no_mbuf);
  uint32_t last = 0;
  bool first = true, intact = true;
  for (const auto& f : got) {
    uint32_t seq = 0;
    intact = intact && check_frame(f, kMacB, kMacA, seq) && (first || seq > last);
    last = seq;
    first = false;
  }
  CHECK(intact);  // byte-checked, in order, none twice
  CHECK(json_sum(d.port("a"), "drops") - json_sum(a0, "drops") == no_mbuf);  // no other reason
  CHECK(json_sum(d.port("b"), "drops") == json_sum(b0, "drops"));
  CHECK(json_u64(d.port("b"), "tx_packets") - json_u64(b0, "tx_packets") == kSent - no_mbuf);
  CHECK(wait_until([&] { return dpdk_memory(d).mbufs_in_use <= before.mbufs_in_use; }, milliseconds(3000)));

  // Full recovery: lossless two-way traffic, and no buffer missing afterwards.
  {
    Background traffic(*a, kMacA, *b, kMacB);
    std::this_thread::sleep_for(milliseconds(1000));
    check_lossless(traffic.finish());
  }
  CHECK(reason_count(d, "a", "drops", "no_mbuf") == no_mbuf);
  CHECK(wait_until([&] { return dpdk_memory(d).mbufs_in_use <= before.mbufs_in_use; }, milliseconds(3000)));
  finish(d);
}

TEST_CASE("a guest flooding kicks from a thread: others keep lossless traffic") {
  Bench bench({"x"});
  auto x = attach(bench.d, "x");
  REQUIRE(x);
  std::atomic<bool> stop = false;
  std::atomic<uint64_t> kicks = 0;
  std::thread flood([&] {
    const uint64_t one = 1;
    while (!stop) {
      for (uint32_t ring : {kRxRing, kTxRing})
        if (::write(x->kick_fd(ring), &one, sizeof(one)) == sizeof(one)) ++kicks;
    }
  });
  {
    Background traffic(*bench.a, kMacA, *bench.b, kMacB);
    std::this_thread::sleep_for(milliseconds(2000));
    check_lossless(traffic.finish());
  }
  stop = true;
  flood.join();
  CHECK(kicks > 10000);
  CHECK(bench.d.alive());
  CHECK(pair_switches(*x, kMacX, *bench.a, kMacA));
  finish(bench.d);
}

TEST_CASE("split rings of 32768 entries work; 32769 and 3000 are refused with a reason") {
  Bench bench({"x", "y"});
  FrontendOptions big;
  big.ring_size = 32768;
  big.rx_buf_len = 2048;
  auto x = attach(bench.d, "x", big);
  REQUIRE_MESSAGE(x, bench.d.log_tail());
  CHECK(pair_switches(*x, kMacX, *bench.a, kMacA, 64));
  auto y = handshaken(bench.d, "y");
  REQUIRE(y);
  for (uint32_t n : {32769u, 3000u, 65536u}) {
    CAPTURE(n);
    const uint64_t errors = reason_count(bench.d, "y", "protocol_errors", "bad_ring_size");
    CHECK(y->set_vring_num(kTxRing, n).failed());
    CHECK(reason_count(bench.d, "y", "protocol_errors", "bad_ring_size") == errors + 1);
  }
  CHECK(y->set_vring_num(kTxRing, 32768).ok());
  CHECK(bench.healthy());
  finish(bench.d);
}

}  // namespace vusw::it
