// Test frames and a single-threaded traffic pump between fake front-ends.
// Frames carry a flow tag, a sequence number and a position-dependent pattern
// so every delivered byte can be checked. The pump keeps the number of frames
// in flight below the receiver's posted RX buffers: with no RX buffer the
// switch must drop, and the tests want exact, loss-free counts.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "fake_frontend.h"

namespace vusw::it {

using Mac = std::array<uint8_t, 6>;
// Locally administered unicast MAC ending in `id`.
constexpr Mac mac(uint8_t id) { return {0x02, 0x00, 0x00, 0x00, 0x00, id}; }

inline constexpr uint16_t kTestEtherType = 0x88b5;  // IEEE local experimental
inline constexpr size_t kMinTestFrame = 20;         // L2 header + seq + len

std::vector<std::byte> make_frame(const Mac& dst, const Mac& src, uint32_t seq, size_t len);
// True if `f` is exactly make_frame(dst, src, seq, len) for some len; returns seq.
bool check_frame(std::span<const std::byte> f, const Mac& dst, const Mac& src, uint32_t& seq);
bool frame_from(std::span<const std::byte> f, const Mac& src);
bool frame_to(std::span<const std::byte> f, const Mac& dst);

struct Flow {
  FakeFrontend* from;
  FakeFrontend* to;
  Mac src, dst;
  size_t len;
  TxLayout layout;
  uint32_t count;
  // Results
  uint32_t sent = 0;
  uint32_t received = 0;
  uint32_t corrupt = 0;       // wrong bytes, wrong length or wrong sequence number
  uint32_t rx_queues = 0;     // bit q: a frame of this flow arrived on RX queue q
  // Options (after the results so the positional initialisers above stay short)
  uint16_t tx_queue = 0;      // the sender's TX queue pair
  uint32_t window = 0;        // frames in flight at most; 0: a quarter of the receiver's RX buffers
};

struct PumpResult {
  bool completed = false;     // every flow delivered `count` frames
  uint32_t stray = 0;         // frames that belong to no flow (e.g. flood copies)
  std::string summary() const;
  std::vector<Flow> flows;
};

// Sends all flows concurrently; stops when done or nothing moved for `stall`.
PumpResult pump(std::vector<Flow> flows, std::chrono::milliseconds stall = std::chrono::milliseconds(3000));

// n frames each way between a and b (after which the switch has learned both MACs).
PumpResult exchange(FakeFrontend& a, const Mac& ma, FakeFrontend& b, const Mac& mb, uint32_t n = 16);
// exchange() delivered everything intact.
bool pair_switches(FakeFrontend& a, const Mac& ma, FakeFrontend& b, const Mac& mb, uint32_t n = 16);

// Polls pred every 10 ms until true or timeout.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

// Sum of the integer values of a JSON object (e.g. "protocol_errors"); 0 if absent.
uint64_t json_sum(const nlohmann::json& port, const std::string& key);
uint64_t json_u64(const nlohmann::json& port, const std::string& key);

}  // namespace vusw::it
