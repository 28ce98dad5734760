#include "personality.h"

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <stdexcept>
#include <thread>

namespace vusw::it {

namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kRingSize = 256;
constexpr size_t kMinFrame = 60, kMaxFrame = 1514;

// ------------------------------------------------------------ sampling

// One dimension: its name, its values, how to set one and read it back.
struct Dimension {
  const char* name;
  std::vector<int> values;
  std::function<void(Personality&, int)> set;
  std::function<int(const Personality&)> get;
};

const std::vector<Dimension>& dimensions() {
  static const std::vector<Dimension> dims = {
      {"packed", {0, 1}, [](Personality& p, int v) { p.packed = v; }, [](const Personality& p) { return int(p.packed); }},
      {"event_idx", {0, 1}, [](Personality& p, int v) { p.event_idx = v; }, [](const Personality& p) { return int(p.event_idx); }},
      {"in_order", {0, 1}, [](Personality& p, int v) { p.in_order = v; }, [](const Personality& p) { return int(p.in_order); }},
      {"mrg_rxbuf", {0, 1}, [](Personality& p, int v) { p.mrg_rxbuf = v; }, [](const Personality& p) { return int(p.mrg_rxbuf); }},
      {"indirect", {0, 1}, [](Personality& p, int v) { p.indirect = v; }, [](const Personality& p) { return int(p.indirect); }},
      // Legacy drivers a third of the time: they exclude packed rings and IN_ORDER.
      {"version1", {1, 1, 0}, [](Personality& p, int v) { p.version1 = v; }, [](const Personality& p) { return int(p.version1); }},
      {"queue_pairs", {1, 2}, [](Personality& p, int v) { p.queue_pairs = uint16_t(v); },
       [](const Personality& p) { return int(p.queue_pairs); }},
      {"kicks", {0, 1, 2}, [](Personality& p, int v) { p.kicks = Kicks(v); }, [](const Personality& p) { return int(p.kicks); }},
      {"interrupts", {0, 1}, [](Personality& p, int v) { p.interrupts = v; }, [](const Personality& p) { return int(p.interrupts); }},
      {"burst", {1, 4, 16, 32, 64}, [](Personality& p, int v) { p.burst = uint16_t(v); },
       [](const Personality& p) { return int(p.burst); }},
      {"tx_in_flight", {1, 8, 32, 256}, [](Personality& p, int v) { p.tx_in_flight = uint16_t(v); },
       [](const Personality& p) { return int(p.tx_in_flight); }},
      {"rx", {0, 1, 2}, [](Personality& p, int v) { p.rx = RxBuffers(v); }, [](const Personality& p) { return int(p.rx); }},
      {"pauses", {0, 1}, [](Personality& p, int v) { p.pauses = v; }, [](const Personality& p) { return int(p.pauses); }},
  };
  return dims;
}

const Dimension& dimension(const char* name) {
  for (const Dimension& d : dimensions())
    if (std::string(d.name) == name) return d;
  throw std::logic_error(name);
}

// While some personality breaks `bad`, swap dimension `fix` with one that can take
// the bad value and give a good one, keeping each column's value counts.
void repair(std::vector<Personality>& ps, const std::function<bool(const Personality&)>& bad, const char* fix) {
  const Dimension& d = dimension(fix);
  for (Personality& p : ps) {
    if (!bad(p)) continue;
    for (Personality& q : ps) {
      if (&q == &p || bad(q)) continue;
      Personality p2 = p, q2 = q;
      const int pv = d.get(p), qv = d.get(q);
      d.set(p2, qv);
      d.set(q2, pv);
      if (!bad(p2) && !bad(q2)) {
        p = p2;
        q = q2;
        break;
      }
    }
    if (bad(p)) d.set(p, d.get(Personality{}));  // no partner: fall back to the default value
  }
}

const char* rx_name(RxBuffers r) {
  switch (r) {
    case RxBuffers::Single2K: return "2K";
    case RxBuffers::Chain4x512: return "4x512";
    case RxBuffers::Mergeable1K: return "mrg1K";
  }
  return "?";
}

const char* kicks_name(Kicks k) {
  switch (k) {
    case Kicks::Always: return "always";
    case Kicks::Never: return "never";
    case Kicks::WhenAsked: return "asked";
  }
  return "?";
}

}  // namespace

FrontendOptions Personality::options() const {
  FrontendOptions o;
  o.packed = packed;
  o.event_idx = event_idx;
  o.in_order = in_order;
  o.mrg_rxbuf = mrg_rxbuf;
  o.indirect = indirect;
  o.version1 = version1;
  o.queue_pairs = queue_pairs;
  o.ring_size = kRingSize;
  o.kicks = kicks;
  o.rx_buf_len = rx == RxBuffers::Mergeable1K ? 1024 : 2048;
  o.rx_chain = rx == RxBuffers::Chain4x512 ? 4 : 1;
  return o;
}

uint32_t Personality::rx_capacity() const {
  const FrontendOptions o = options();
  const uint32_t buffers = o.ring_size / o.rx_chain;
  const uint32_t per_frame = (kMaxFrame + kNetHdrLen + o.rx_buf_len - 1) / o.rx_buf_len;
  return buffers / per_frame;
}

std::string Personality::describe() const {
  std::string s = packed ? "packed" : "split";
  auto flag = [&](bool on, const char* name) { s += std::string(" ") + (on ? "" : "!") + name; };
  flag(event_idx, "evidx");
  flag(in_order, "inorder");
  flag(mrg_rxbuf, "mrg");
  flag(indirect, "indirect");
  flag(version1, "v1");
  s += " qp=" + std::to_string(queue_pairs) + " kicks=" + kicks_name(kicks) + (interrupts ? " irq" : " poll") +
       " burst=" + std::to_string(burst) + " inflight=" + std::to_string(tx_in_flight) + " rx=" + rx_name(rx) +
       (pauses ? " pauses" : "");
  return s;
}

std::vector<Personality> sample_personalities(std::mt19937_64& rng, size_t n) {
  std::vector<Personality> ps(n);
  for (const Dimension& d : dimensions()) {
    std::vector<int> column;
    for (size_t i = 0; i < n; ++i) column.push_back(d.values[i % d.values.size()]);
    std::shuffle(column.begin(), column.end(), rng);
    for (size_t i = 0; i < n; ++i) d.set(ps[i], column[i]);
  }
  repair(ps, [](const Personality& p) { return !p.version1 && p.packed; }, "packed");
  repair(ps, [](const Personality& p) { return !p.version1 && p.in_order; }, "in_order");
  repair(ps, [](const Personality& p) { return p.rx == RxBuffers::Mergeable1K && !p.mrg_rxbuf; }, "mrg_rxbuf");
  return ps;
}

std::string coverage(const std::vector<Personality>& ps) {
  std::string s;
  for (const Dimension& d : dimensions()) {
    std::map<int, int> counts;
    for (const Personality& p : ps) ++counts[d.get(p)];
    s += s.empty() ? "" : ", ";
    s += d.name;
    for (auto [v, c] : counts) s += " " + std::to_string(v) + ":" + std::to_string(c);
  }
  return s;
}

std::string SideResult::summary() const {
  return "sent " + std::to_string(sent) + " received " + std::to_string(received) + " corrupt " +
         std::to_string(corrupt) + " reordered " + std::to_string(reordered) + " stray " + std::to_string(stray) +
         " calls " + std::to_string(calls) + " lost calls " + std::to_string(lost_calls) + " rx queues " +
         std::to_string(rx_queues);
}

// ------------------------------------------------------------ the pump

namespace {

struct FlowState {
  Mac src, dst;
  uint16_t txq;
  uint32_t count;
  uint32_t sent = 0;
  uint32_t expect = 0;  // next sequence number the receiver wants
};

class Driver {
 public:
  Driver(const PumpSide& s, std::mt19937_64& rng, SideResult& r) : s_(s), rng_(rng), r_(r) {
    for (uint32_t i = 0; i < s.fe->num_rings(); ++i) s.fe->ring(i).set_no_interrupt(!s.p.interrupts);
  }

  void add_flows(const std::vector<Mac>& dsts, uint32_t frames) {
    const auto n = static_cast<uint32_t>(s_.macs.size());
    for (uint32_t k = 0; k < n; ++k)
      flows_.push_back({s_.macs[k], dsts[k % dsts.size()], static_cast<uint16_t>(k % s_.p.queue_pairs),
                        frames / n + (k < frames % n ? 1 : 0)});
  }
  bool done_receiving(const Driver& from) const { return r_.received == from.total(); }
  uint32_t total() const {
    uint32_t n = 0;
    for (const FlowState& f : flows_) n += f.count;
    return n;
  }
  bool paused() const { return Clock::now() < pause_until_; }

  // One burst towards `peer`; returns frames sent.
  uint32_t send_burst(const Driver& peer) {
    if (paused()) return 0;
    const uint32_t want = std::uniform_int_distribution<uint32_t>(1, s_.p.burst)(rng_);
    uint32_t sent = 0, queues = 0;
    for (uint32_t tries = 0; sent < want && tries < 2 * flows_.size(); ++tries) {
      FlowState& f = flows_[next_flow_++ % flows_.size()];
      if (f.sent == f.count) continue;
      if (r_.sent - peer.arrived_ >= peer.s_.p.rx_capacity()) break;  // the peer's RX buffers are all promised
      if (!send_one(f)) continue;
      queues |= 1u << f.txq;
      ++sent;
      tries = 0;
    }
    for (uint16_t q = 0; q < s_.p.queue_pairs; ++q)
      if (queues & (1u << q)) s_.fe->notify(tx_ring(q));
    if (s_.p.pauses && sent > 0 && rng_() % 16 == 0)
      pause_until_ = Clock::now() + std::chrono::microseconds(rng_() % 2001);
    return sent;
  }

  // Reclaims TX and receives on every queue (interrupt-driven: only rings whose call
  // fired); `from` is the peer whose flows arrive here. Returns entries consumed.
  size_t service(Driver& from) {
    if (paused()) return 0;
    size_t n = 0;
    for (uint16_t q = 0; q < s_.p.queue_pairs; ++q) {
      n += on_ring(tx_ring(q), [&] { return s_.fe->tx(q).reclaim().size(); });
      n += on_ring(rx_ring(q), [&] { return receive(q, from); });
    }
    return n;
  }

  // Interrupt-driven rings with used entries but no call: lost notifications.
  void count_lost_calls() {
    if (!s_.p.interrupts) return;
    for (uint32_t i = 0; i < s_.fe->num_rings(); ++i)
      if (s_.fe->ring(i).used_pending() && !s_.fe->wait_call(i, Millis(0))) ++r_.lost_calls;
  }
  void call_fds(std::vector<pollfd>& fds) const {
    for (uint32_t i = 0; i < s_.fe->num_rings(); ++i) fds.push_back({s_.fe->call_fd(i), POLLIN, 0});
  }
  bool polls() const { return !s_.p.interrupts; }

 private:
  bool send_one(FlowState& f) {
    DriverRing& t = s_.fe->tx(f.txq);
    std::vector<TxLayout> layouts = {TxLayout::Single, TxLayout::Chained};
    if (s_.fe->features() & feat::kIndirectDesc) layouts.push_back(TxLayout::Indirect);
    const TxLayout layout = layouts[rng_() % layouts.size()];
    // Without room the driver waits for its reclaim (send_frame would reclaim by itself).
    if (t.in_flight() >= s_.p.tx_in_flight || t.num_free() < (layout == TxLayout::Chained ? 2 : 1)) return false;
    const size_t len = std::uniform_int_distribution<size_t>(kMinFrame, kMaxFrame)(rng_);
    if (!s_.fe->send_frame(make_frame(f.dst, f.src, f.sent, len), layout, f.txq)) return false;
    ++f.sent;
    ++r_.sent;
    r_.sent_bytes += len;
    return true;
  }

  size_t on_ring(uint32_t index, const std::function<size_t()>& consume) {
    if (!s_.p.interrupts) return consume();
    if (!s_.fe->wait_call(index, Millis(0))) return 0;
    ++r_.calls;
    size_t n = 0;
    // As Linux's virtqueue_enable_cb: after re-arming (reclaim writes used_event) look
    // again, or entries that came in between would wait for a call that is not coming.
    for (;;) {
      n += consume();
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (!s_.fe->ring(index).used_pending()) return n;
    }
  }

  size_t receive(uint16_t q, Driver& from) {
    std::vector<std::vector<std::byte>> frames = s_.fe->poll_rx(q);
    arrived_ += frames.size();
    for (const auto& fr : frames) {
      FlowState* f = from.flow_from(fr);
      uint32_t seq = 0;
      if (f == nullptr) {
        ++r_.stray;
      } else if (!check_frame(fr, f->dst, f->src, seq)) {
        ++r_.corrupt;
      } else if (seq != f->expect) {
        ++r_.reordered;
        f->expect = seq + 1;
      } else {
        ++f->expect;
        ++r_.received;
        r_.received_bytes += fr.size();
        r_.rx_queues |= 1u << q;
      }
    }
    return frames.size();
  }

  FlowState* flow_from(std::span<const std::byte> fr) {
    for (FlowState& f : flows_)
      if (frame_from(fr, f.src)) return &f;
    return nullptr;
  }

  PumpSide s_;
  std::mt19937_64& rng_;
  SideResult& r_;
  std::vector<FlowState> flows_;
  size_t next_flow_ = 0;
  uint64_t arrived_ = 0;  // frames received, intact or not: RX buffers the switch can use again
  Clock::time_point pause_until_{};
};

// Nothing moved: wait for a call (interrupt-driven drivers) or a little (polling ones).
void idle(const Driver& a, const Driver& b) {
  if (a.polls() || b.polls()) {
    std::this_thread::sleep_for(std::chrono::microseconds(20));
    return;
  }
  std::vector<pollfd> fds;
  a.call_fds(fds);
  b.call_fds(fds);
  ::poll(fds.data(), fds.size(), 1);
}

}  // namespace

PersonalityRun pump_personalities(PumpSide a, PumpSide b, uint32_t frames, std::mt19937_64& rng,
                                  std::chrono::milliseconds stall) {
  PersonalityRun run;
  Driver da(a, rng, run.side[0]), db(b, rng, run.side[1]);
  da.add_flows(b.macs, frames);
  db.add_flows(a.macs, frames);
  auto done = [&] { return da.done_receiving(db) && db.done_receiving(da); };
  auto last_progress = Clock::now();
  while (!done()) {
    size_t moved = da.send_burst(db) + db.send_burst(da);
    moved += da.service(db) + db.service(da);
    if (moved > 0) {
      last_progress = Clock::now();
    } else if (Clock::now() - last_progress > stall) {
      da.count_lost_calls();
      db.count_lost_calls();
      break;
    } else {
      idle(da, db);
    }
  }
  run.completed = done();
  return run;
}

}  // namespace vusw::it
