// Shared set-up for the daemon tests: a daemon with a healthy pair of ports
// ("a" and "b", each with a brought-up fake guest) plus spare ports the test
// can abuse. Every bad-input test ends by proving that the pair still switches.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "daemon.h"
#include "fake_frontend.h"
#include "moving_traffic.h"
#include "traffic.h"

namespace vusw::it {

inline const Mac kMacA = mac(0x0a);
inline const Mac kMacB = mac(0x0b);
inline const Mac kMacX = mac(0x1e);

// The integer in environment variable `name`, or `fallback` if it is unset or empty.
long env_long(const char* name, long fallback);

// Connects to `port` and runs the whole QEMU-like bring-up; nullptr on failure.
std::unique_ptr<FakeFrontend> attach(const Daemon& d, const std::string& port, FrontendOptions opt = {});
// Connects and runs the handshake only (no memory, no rings).
std::unique_ptr<FakeFrontend> handshaken(const Daemon& d, const std::string& port, FrontendOptions opt = {});
// Two fresh guests made ready for exact counts: after the FDB clock's first tick (a MAC
// learned before it ages early), both MACs learned (pair_switches) and the frames
// flooded while they were unknown taken off both RX rings.
bool learned_pair(FakeFrontend& p, const Mac& mp, FakeFrontend& q, const Mac& mq);

struct Bench {
  // Ports a and b (attached) plus `spare` server ports left for the test.
  explicit Bench(const std::vector<std::string>& spare = {"x"});
  // a <-> b still switch; on failure prints what was lost and the daemon log.
  bool healthy();
  nlohmann::json port(const std::string& name) const { return d.port(name); }
  uint64_t errors(const std::string& name) const { return json_sum(d.port(name), "protocol_errors"); }
  uint64_t regions(const std::string& name) const { return json_u64(d.port(name), "mem_regions"); }
  // Broken queues plus drops: what a guest-side violation must raise.
  uint64_t guest_faults(const std::string& name) const;
  // Waits until errors(name) exceeds `before`.
  bool error_counted(const std::string& name, uint64_t before) const;

  Daemon d;
  std::unique_ptr<FakeFrontend> a, b;
};

// Asserts the daemon is still running, then stops it and asserts exit status 0.
void finish(Daemon& d);

// Frames and Ethernet bytes (no virtio-net header) a port moved: rx = from its
// guest, tx = to its guest.
struct PortCounts {
  uint64_t rx_pkts = 0, rx_bytes = 0, tx_pkts = 0, tx_bytes = 0;
};
// Waits (3 s) until port `name` counted exactly `want` packets, then CHECKs packets
// and bytes in the control JSON and on /metrics, and that nothing was dropped,
// refused or broken.
void check_exact_counters(const Daemon& d, const std::string& name, const PortCounts& want);
// Queues of `port` broken with `reason` so far (the "broken" object of show_ports).
uint64_t broken(const nlohmann::json& port, const std::string& reason);

// A leak check on the daemon's open fds and mappings (/proc/<pid>/fd, /maps).
// The fd and mapping of a removed region go only after its grace period, so the
// baseline is each count once it stopped changing for half a second, and each
// count gets 5 s to come back to it.
class LeakBaseline {
 public:
  explicit LeakBaseline(const Daemon& d);
  // Waits for both counts to be back at the baseline; remembers what it saw.
  void wait_back();
  // One CHECK per count: back at the baseline in the last wait_back().
  void check() const;
  // "fds 31 -> 31, mappings 250 -> 250" (baseline -> last wait_back()).
  std::string report() const;

 private:
  const Daemon& d_;
  size_t fds0_, maps0_;
  size_t fds_ = 0, maps_ = 0;
  bool fds_back_ = false, maps_back_ = false;
  std::multiset<std::string> targets0_;  // what the fds pointed at, at the baseline
  std::string extra_;                    // what the leftover ones point at
};

// Resident set of the daemon, KiB.
size_t rss_kib(const Daemon& d);
// The daemon runs under AddressSanitizer, whose quarantine keeps freed memory resident.
bool sanitized(const Daemon& d);

// DPDK memory the daemon holds (from /metrics): its heap and the packet buffers in use.
struct DpdkMemory {
  uint64_t heap_bytes = 0, mbufs_in_use = 0;
};
DpdkMemory dpdk_memory(const Daemon& d);

// Everything a long run must give back, taken once the daemon has warmed up: fds and
// mappings exactly (LeakBaseline), DPDK heap and mbufs in use at most as at the start,
// and RSS grown by no more than the packet-buffer pages traffic touches first (the
// tests' daemons run on ordinary memory, --no-huge; not checked under ASan, whose
// quarantine keeps freed memory resident).
class ResourceBaseline {
 public:
  explicit ResourceBaseline(const Daemon& d);
  void wait_back();
  void check() const;
  // "fds 31 -> 31, mappings ..., RSS ..., DPDK heap ..., mbufs in use ..." (start -> end).
  std::string report() const;

 private:
  const Daemon& d_;
  LeakBaseline leaks_;
  size_t rss0_, rss1_ = 0;
  DpdkMemory dpdk0_, dpdk1_;
};

// Continuous traffic between two guests on its own thread (MovingTraffic without
// moves: every frame byte-checked, in order), stopped and checked at the end.
class Background {
 public:
  Background(FakeFrontend& p, const Mac& mp, FakeFrontend& q, const Mac& mq)
      : t_(p, mp, q, mq), th_([this] { t_.run(); }) {}
  ~Background() { finish(); }
  MovingTraffic& finish() {
    if (th_.joinable()) {
      t_.stop();
      th_.join();
    }
    return t_;
  }

 private:
  MovingTraffic t_;
  std::thread th_;
};

// Both directions delivered every frame sent, intact and in order.
void check_lossless(const MovingTraffic& t);

// vuswitchctl as a script runs it: $VUSWITCHCTL, else the one next to the daemon binary.
std::string ctl_binary();
struct CtlRun {
  int status = -1;  // exit status
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs vuswitchctl with `args` (a shell word list, quoted by the caller where needed).
CtlRun run_ctl(const std::string& args);
// The same against `d`'s control socket.
CtlRun run_ctl(const Daemon& d, const std::string& args);
// One control request's reply (REQUIREs one, CHECKs it has the protocol version).
nlohmann::json ctl(const Daemon& d, const nlohmann::json& request);
// The error code of a control reply; "" if it is no error.
std::string error_code(const nlohmann::json& reply);
bool has(const std::string& text, const std::string& part);

}  // namespace vusw::it
