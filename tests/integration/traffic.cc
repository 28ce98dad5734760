#include "traffic.h"

#include <cstring>
#include <set>
#include <thread>

namespace vusw::it {

namespace {

std::byte pattern(uint32_t seq, size_t i) { return static_cast<std::byte>((seq * 7 + i) & 0xff); }

void put16(std::byte* p, uint16_t v) {
  p[0] = static_cast<std::byte>(v >> 8);
  p[1] = static_cast<std::byte>(v);
}

uint16_t get16(const std::byte* p) {
  return static_cast<uint16_t>((std::to_integer<unsigned>(p[0]) << 8) | std::to_integer<unsigned>(p[1]));
}

// How many frames may be in flight towards `to` without running out of RX buffers.
uint32_t window(const Flow& f) {
  if (f.window != 0) return f.window;
  uint32_t buf = f.to->options().rx_buf_len;
  uint32_t per_frame = static_cast<uint32_t>((f.len + kNetHdrLen + buf - 1) / buf);
  return std::max<uint32_t>(1, f.to->rx().size() / per_frame / 4);
}

bool send_some(Flow& f) {
  bool any = false;
  while (f.sent < f.count && f.sent - f.received < window(f) &&
         f.from->send_frame(make_frame(f.dst, f.src, f.sent, f.len), f.layout, f.tx_queue)) {
    ++f.sent;
    any = true;
  }
  if (any) f.from->kick(tx_ring(f.tx_queue));
  return any;
}

bool receive_some(FakeFrontend* to, uint16_t q, std::vector<Flow>& flows, PumpResult& r) {
  std::vector<std::vector<std::byte>> frames = to->poll_rx(q);
  for (const auto& fr : frames) {
    Flow* owner = nullptr;
    for (Flow& f : flows)
      // Flows sharing a source are told apart by frame length. Frames for
      // another MAC are flood copies from earlier exchanges: not ours.
      if (f.to == to && frame_from(fr, f.src) && frame_to(fr, f.dst) && fr.size() == f.len) owner = &f;
    if (owner == nullptr) {
      ++r.stray;
      continue;
    }
    uint32_t seq = 0;
    if (!check_frame(fr, owner->dst, owner->src, seq) || seq != owner->received)
      ++owner->corrupt;
    ++owner->received;
    owner->rx_queues |= 1u << q;
  }
  return !frames.empty();
}

bool receive_some(FakeFrontend* to, std::vector<Flow>& flows, PumpResult& r) {
  bool any = false;
  for (uint16_t q = 0; q < to->queue_pairs(); ++q) any |= receive_some(to, q, flows, r);
  return any;
}

bool all_done(const std::vector<Flow>& flows) {
  for (const Flow& f : flows)
    if (f.received < f.count) return false;
  return true;
}

}  // namespace

std::vector<std::byte> make_frame(const Mac& dst, const Mac& src, uint32_t seq, size_t len) {
  std::vector<std::byte> f(std::max(len, kMinTestFrame));
  std::memcpy(f.data(), dst.data(), 6);
  std::memcpy(f.data() + 6, src.data(), 6);
  put16(f.data() + 12, kTestEtherType);
  put16(f.data() + 14, static_cast<uint16_t>(seq >> 16));
  put16(f.data() + 16, static_cast<uint16_t>(seq));
  put16(f.data() + 18, static_cast<uint16_t>(len));
  for (size_t i = kMinTestFrame; i < f.size(); ++i) f[i] = pattern(seq, i);
  return f;
}

bool frame_from(std::span<const std::byte> f, const Mac& src) {
  return f.size() >= kMinTestFrame && std::memcmp(f.data() + 6, src.data(), 6) == 0 &&
         get16(f.data() + 12) == kTestEtherType;
}

bool frame_to(std::span<const std::byte> f, const Mac& dst) {
  return f.size() >= kMinTestFrame && std::memcmp(f.data(), dst.data(), 6) == 0;
}

bool check_frame(std::span<const std::byte> f, const Mac& dst, const Mac& src, uint32_t& seq) {
  if (!frame_from(f, src) || std::memcmp(f.data(), dst.data(), 6) != 0) return false;
  seq = (uint32_t{get16(f.data() + 14)} << 16) | get16(f.data() + 16);
  if (get16(f.data() + 18) != f.size()) return false;
  for (size_t i = kMinTestFrame; i < f.size(); ++i)
    if (f[i] != pattern(seq, i)) return false;
  return true;
}

PumpResult pump(std::vector<Flow> flows, std::chrono::milliseconds stall) {
  PumpResult r;
  std::set<FakeFrontend*> senders, receivers;
  for (const Flow& f : flows) {
    senders.insert(f.from);
    receivers.insert(f.to);
  }
  auto last_progress = std::chrono::steady_clock::now();
  while (!all_done(flows) && std::chrono::steady_clock::now() - last_progress < stall) {
    bool moved = false;
    for (Flow& f : flows) moved |= send_some(f);
    for (FakeFrontend* to : receivers) moved |= receive_some(to, flows, r);
    for (FakeFrontend* from : senders) moved |= from->reclaim_tx() > 0;
    if (moved)
      last_progress = std::chrono::steady_clock::now();
    else
      (*receivers.begin())->wait_rx_call(std::chrono::milliseconds(1));
  }
  r.completed = all_done(flows);
  r.flows = std::move(flows);
  return r;
}

std::string PumpResult::summary() const {
  std::string s = completed ? "completed" : "INCOMPLETE";
  for (const Flow& f : flows)
    s += "; flow len " + std::to_string(f.len) + ": sent " + std::to_string(f.sent) + " received " +
         std::to_string(f.received) + "/" + std::to_string(f.count) + " corrupt " + std::to_string(f.corrupt);
  return s + "; stray " + std::to_string(stray);
}

PumpResult exchange(FakeFrontend& a, const Mac& ma, FakeFrontend& b, const Mac& mb, uint32_t n) {
  return pump({Flow{&a, &b, ma, mb, 128, TxLayout::Single, n}, Flow{&b, &a, mb, ma, 128, TxLayout::Single, n}});
}

bool pair_switches(FakeFrontend& a, const Mac& ma, FakeFrontend& b, const Mac& mb, uint32_t n) {
  PumpResult r = exchange(a, ma, b, mb, n);
  return r.completed && r.flows[0].corrupt == 0 && r.flows[1].corrupt == 0;
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

uint64_t json_sum(const nlohmann::json& port, const std::string& key) {
  if (!port.is_object() || !port.contains(key) || !port[key].is_object()) return 0;
  uint64_t total = 0;
  for (const auto& [k, v] : port[key].items())
    if (v.is_number_unsigned() || v.is_number_integer()) total += v.get<uint64_t>();
  return total;
}

uint64_t json_u64(const nlohmann::json& port, const std::string& key) {
  if (!port.is_object() || !port.contains(key) || !port[key].is_number()) return 0;
  return port[key].get<uint64_t>();
}

}  // namespace vusw::it
