#include "moving_traffic.h"

#include <chrono>
#include <cstring>
#include <thread>

namespace vusw::it {

namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kSlot = DriverRing::kSlotSize;
constexpr uint64_t kTwoMiB = 2ull << 20;

void put_seq(std::byte* frame, uint32_t seq) {
  // make_frame's layout: sequence number big-endian at bytes 14..17.
  frame[14] = static_cast<std::byte>(seq >> 24);
  frame[15] = static_cast<std::byte>(seq >> 16);
  frame[16] = static_cast<std::byte>(seq >> 8);
  frame[17] = static_cast<std::byte>(seq);
}

uint32_t get_seq(const std::byte* frame) {
  uint32_t v = 0;
  for (int i = 14; i < 18; ++i) v = (v << 8) | std::to_integer<uint32_t>(frame[i]);
  return v;
}

}  // namespace

struct MovingTraffic::Side {
  Side(FakeFrontend& f, const Mac& m, bool mv) : fe(&f), mac(m), moving(mv) {
    tx_gen.assign(f.tx().size(), -1);
    rx_gen.assign(f.rx().size(), -1);
    rx_host.resize(f.rx().size());
    for (uint16_t i = 0; i < f.rx().size(); ++i) rx_host[i] = f.rx().slot(i);
    rx_posted = f.rx().in_flight();
  }
  FakeFrontend* fe;
  Mac mac;
  bool moving;
  std::vector<int> tx_gen, rx_gen;  // generation of the buffer posted under each head
  std::vector<std::byte*> rx_host;  // where the RX buffer under each head is
  uint32_t rx_posted = 0;           // RX buffers posted and not yet reclaimed
};

MovingTraffic::MovingTraffic(FakeFrontend& mover, const Mac& mover_mac, FakeFrontend& peer,
                             const Mac& peer_mac, MovingTrafficOptions opt)
    : opt_(std::move(opt)),
      mover_(std::make_unique<Side>(mover, mover_mac, true)),
      peer_(std::make_unique<Side>(peer, peer_mac, false)) {
  for (size_t len : opt_.sizes) templates_.push_back(make_frame({}, {}, 0, len));
  if (opt_.no_interrupt)
    for (FakeFrontend* f : {&mover, &peer}) {
      f->rx().set_no_interrupt(true);
      f->tx().set_no_interrupt(true);
    }
}

MovingTraffic::~MovingTraffic() = default;

uint64_t MovingTraffic::region_size() const {
  uint64_t bytes = uint64_t{kSlot} * (mover_->fe->tx().size() + mover_->fe->rx().size());
  return (bytes + kTwoMiB - 1) / kTwoMiB * kTwoMiB;
}

uint64_t MovingTraffic::region_gpa(int gen) const {
  return opt_.region_gpa + static_cast<uint64_t>(gen % 2) * region_size();
}

// ------------------------------------------------------------------ traffic thread

MovingTraffic::Place MovingTraffic::tx_place(Side& s, uint16_t desc) const {
  std::byte* base = s.moving && seen_ >= 0 ? host_[seen_ % 2].load(std::memory_order_relaxed) : nullptr;
  if (base == nullptr) return {s.fe->tx().slot(desc), s.fe->tx().slot_gpa(desc), s.moving ? seen_ : -1};
  uint64_t off = uint64_t{kSlot} * desc;
  return {base + off, region_gpa(seen_) + off, seen_};
}

MovingTraffic::Place MovingTraffic::rx_place(Side& s, uint16_t desc) const {
  std::byte* base = s.moving && seen_ >= 0 ? host_[seen_ % 2].load(std::memory_order_relaxed) : nullptr;
  if (base == nullptr) return {s.fe->rx().slot(desc), s.fe->rx().slot_gpa(desc), s.moving ? seen_ : -1};
  uint64_t off = uint64_t{kSlot} * (s.fe->tx().size() + desc);
  return {base + off, region_gpa(seen_) + off, seen_};
}

void MovingTraffic::follow_control() {
  int cur = current_.load(std::memory_order_acquire);
  if (cur != seen_) {
    seen_ = cur;
    auto n = static_cast<size_t>(cur + 1);
    in_use_.resize(n, 0);
    posted_tx_.resize(n, 0);
    posted_rx_.resize(n, 0);
  }
  if (seen_ >= 0 && posted_tx_[seen_] > 0 && posted_rx_[seen_] > 0 &&
      (seen_ == 0 || in_use_[seen_ - 1] == 0) && retired_.load(std::memory_order_relaxed) != seen_)
    retired_.store(seen_, std::memory_order_release);
}

bool MovingTraffic::reclaim_tx(Side& s) {
  std::vector<UsedEntry> used = s.fe->tx().reclaim();
  for (const UsedEntry& e : used) {
    if (e.id >= s.tx_gen.size()) continue;
    int g = s.tx_gen[e.id];
    if (g >= 0) --in_use_[g];
  }
  return !used.empty();
}

std::optional<uint16_t> MovingTraffic::post(DriverRing& ring, std::span<const Seg> segs, int gen,
                                            std::vector<int>& head_gen, std::vector<uint32_t>& posted) {
  std::optional<uint16_t> head = ring.post_chain(segs);
  if (!head) return std::nullopt;
  head_gen[*head] = gen;
  if (gen >= 0) {
    ++in_use_[gen];
    ++posted[gen];
  }
  return head;
}

bool MovingTraffic::send_some(Side& s, Side& to, Direction& d) {
  DriverRing& ring = s.fe->tx();
  uint32_t n = 0;
  while (d.sent - d.received < opt_.window) {
    auto seq = static_cast<uint32_t>(d.sent);
    size_t k = seq % opt_.sizes.size();
    size_t len = opt_.sizes[k];
    bool chained = opt_.mix_layouts && (seq & 1) != 0;
    uint16_t need = chained ? 2 : 1;
    if (ring.num_free() < need) break;
    std::vector<uint16_t> desc = ring.peek_free(need);
    Place p0 = tx_place(s, desc[0]);
    std::memset(p0.host, 0, kNetHdrLen);
    std::byte* frame = chained ? tx_place(s, desc[1]).host : p0.host + kNetHdrLen;
    if (opt_.verify) {
      std::vector<std::byte> f = make_frame(to.mac, s.mac, seq, len);
      std::memcpy(frame, f.data(), f.size());
    } else {
      std::memcpy(frame, templates_[k].data(), templates_[k].size());
      std::memcpy(frame, to.mac.data(), 6);
      std::memcpy(frame + 6, s.mac.data(), 6);
      put_seq(frame, seq);
    }
    auto flen = static_cast<uint32_t>(len);
    // Header and frame in one descriptor, or in one each.
    Seg segs[2] = {{p0.gpa, kNetHdrLen + flen, false}, {}};
    if (chained) {
      segs[0].len = kNetHdrLen;
      segs[1] = {tx_place(s, desc[1]).gpa, flen, false};
    }
    if (!post(ring, std::span(segs, need), p0.gen, s.tx_gen, posted_tx_)) break;
    d.sent_gen[seq % d.sent_gen.size()] = p0.gen;
    ++d.sent;
    ++n;
  }
  if (n > 0) s.fe->kick(kTxRing);
  return n > 0;
}

void MovingTraffic::refill_rx(Side& s) {
  DriverRing& ring = s.fe->rx();
  uint32_t n = 0;
  while (s.rx_posted < opt_.rx_posted && ring.num_free() > 0) {
    uint16_t desc = ring.peek_free(1).front();
    Place p = rx_place(s, desc);
    const Seg seg{p.gpa, kSlot, true};
    std::optional<uint16_t> head = post(ring, std::span(&seg, 1), p.gen, s.rx_gen, posted_rx_);
    if (!head) break;
    s.rx_host[*head] = p.host;
    ++s.rx_posted;
    ++n;
  }
  if (n > 0) s.fe->kick(kRxRing);
}

bool MovingTraffic::receive_some(Side& s, Side& from, Direction& d) {
  std::vector<UsedEntry> used = s.fe->rx().reclaim();
  for (const UsedEntry& e : used) {
    if (e.id >= s.rx_gen.size()) {
      ++d.rx_errors;
      continue;
    }
    --s.rx_posted;
    int g = s.rx_gen[e.id];
    if (g >= 0) --in_use_[g];
    const std::byte* buf = s.rx_host[e.id];
    VirtioNetHdr h{};
    if (e.len < kNetHdrLen + kMinTestFrame || e.len > kSlot) {
      ++d.rx_errors;
      continue;
    }
    std::memcpy(&h, buf, sizeof(h));
    if (h.num_buffers != 1) ++d.rx_errors;  // every frame fits one 2 KiB buffer
    std::span<const std::byte> frame(buf + kNetHdrLen, e.len - kNetHdrLen);
    auto want = static_cast<uint32_t>(d.received);
    size_t want_len = opt_.sizes[want % opt_.sizes.size()];
    bool ok = frame.size() == want_len && frame_from(frame, from.mac) && frame_to(frame, s.mac);
    if (ok && opt_.verify) {
      uint32_t seq = 0;
      ok = check_frame(frame, s.mac, from.mac, seq) && seq == want;
    } else if (ok) {
      ok = get_seq(frame.data()) == want;
    }
    if (!ok && d.corrupt++ == 0) {
      d.first_corrupt = "expected seq " + std::to_string(want) + " (" + std::to_string(want_len) +
                        " B), got " + std::to_string(frame.size()) + " B with seq " +
                        std::to_string(get_seq(frame.data())) + "; sent from generation " +
                        std::to_string(d.sent_gen[want % d.sent_gen.size()]) + ", received in generation " +
                        std::to_string(g) + ", traffic at generation " + std::to_string(seen_);
    }
    ++d.received;
  }
  refill_rx(s);
  return !used.empty();
}

void MovingTraffic::run() {
  auto last_progress = Clock::now();
  for (;;) {
    follow_control();
    bool stopping = stop_.load(std::memory_order_acquire);
    bool moved = reclaim_tx(*mover_);
    moved |= reclaim_tx(*peer_);
    moved |= receive_some(*peer_, *mover_, dir_[0]);
    moved |= receive_some(*mover_, *peer_, dir_[1]);
    delivered_.store(dir_[0].received + dir_[1].received, std::memory_order_relaxed);
    if (!stopping) {
      moved |= send_some(*mover_, *peer_, dir_[0]);
      moved |= send_some(*peer_, *mover_, dir_[1]);
    } else if (dir_[0].received == dir_[0].sent && dir_[1].received == dir_[1].sent) {
      break;
    }
    auto now = Clock::now();
    if (moved) {
      last_progress = now;
    } else if (now - last_progress > opt_.stall) {
      stalled_ = true;
      break;
    } else if (opt_.yield_when_idle) {
      std::this_thread::yield();
    }
  }
  // Whatever TX the daemon returned late is accounted for (buffers no longer in use).
  reclaim_tx(*mover_);
  reclaim_tx(*peer_);
  follow_control();
}

std::string MovingTraffic::summary() const {
  auto dir = [](const char* name, const Direction& d) {
    return std::string(name) + ": sent " + std::to_string(d.sent) + " received " + std::to_string(d.received) +
           " corrupt " + std::to_string(d.corrupt) + " rx_errors " + std::to_string(d.rx_errors) +
           (d.first_corrupt.empty() ? "" : " (first corrupt: " + d.first_corrupt + ")");
  };
  return dir("mover->peer", dir_[0]) + "; " + dir("peer->mover", dir_[1]) + (stalled_ ? "; STALLED" : "") +
         "; generations " + std::to_string(next_gen_) + (error_.empty() ? "" : "; error: " + error_);
}

// ------------------------------------------------------------------ control thread

bool MovingTraffic::wait_retired(int gen) {
  auto deadline = Clock::now() + opt_.drain_timeout;
  while (retired_.load(std::memory_order_acquire) < gen) {
    if (Clock::now() > deadline) {
      error_ = "generation " + std::to_string(gen) + ": old buffers still in use after " +
               std::to_string(opt_.drain_timeout.count()) + " ms";
      return false;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  return true;
}

bool MovingTraffic::relayout() {
  if (!error_.empty()) return false;
  FakeFrontend& fe = *mover_->fe;
  int gen = next_gen_++;
  auto region = std::make_unique<MemRegion>(region_gpa(gen), region_size(), opt_.hugepage_regions);
  auto t0 = Clock::now();
  Ack add = fe.add_mem_reg(*region);
  mem_msg_seconds_ += std::chrono::duration<double>(Clock::now() - t0).count();
  if (!add.ok()) {
    error_ = "ADD_MEM_REG of generation " + std::to_string(gen) + " failed (status " +
             std::to_string(static_cast<int>(add.status)) + ", value " + std::to_string(add.value) + ")";
    return false;
  }
  host_[gen % 2].store(region->host(), std::memory_order_relaxed);
  current_.store(gen, std::memory_order_release);
  // From here on the traffic thread may write into the new region: it lives on
  // even if this cycle fails (until the object is destroyed, after run()).
  pending_ = std::move(region);
  if (!wait_retired(gen)) return false;
  if (region_) {
    auto t1 = Clock::now();
    Ack rem = fe.rem_mem_reg(*region_);
    mem_msg_seconds_ += std::chrono::duration<double>(Clock::now() - t1).count();
    if (!rem.ok()) {
      error_ = "REM_MEM_REG before generation " + std::to_string(gen) + " failed (status " +
               std::to_string(static_cast<int>(rem.status)) + ", value " + std::to_string(rem.value) + ")";
      return false;
    }
  }
  region_ = std::move(pending_);
  return true;
}

bool MovingTraffic::back_to_main() {
  if (!error_.empty() || !region_) return error_.empty();
  int gen = next_gen_++;
  host_[gen % 2].store(nullptr, std::memory_order_relaxed);  // the rings' own slots
  current_.store(gen, std::memory_order_release);
  if (!wait_retired(gen)) return false;
  Ack rem = mover_->fe->rem_mem_reg(*region_);
  if (!rem.ok()) {
    error_ = "final REM_MEM_REG failed";
    return false;
  }
  region_.reset();
  return true;
}

}  // namespace vusw::it
