// Dirty-page logging for live migration (VHOST_F_LOG_ALL, LOG_SHMFD; issue 10). A
// front-end "m" (the migrating guest) hands the switch a dirty log the way QEMU does
// (SET_LOG_BASE, SET_FEATURES with LOG_ALL, SET_VRING_ADDR with VHOST_VRING_F_LOG), then
// frames flow to and from it in every buffer layout. The log must hold exactly the pages
// the switch wrote:
// - guest RX: the bytes of every used RX buffer (as the used entries give them) and the
//   used-ring pages that changed; nothing else (not the TX buffers the switch only read);
// - guest TX (copied and lent): the used-ring pages that changed, nothing else.
// "Changed" comes from snapshots of m's memory taken before and after, while m itself
// writes nothing. Then: a new log base replaces the old one under traffic, LOG_ALL off
// stops logging, GET_VRING_BASE leaves nothing unlogged, and a log too small for the
// guest's memory is counted, not overrun.
#include <doctest/doctest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <set>
#include <thread>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;
using Pages = std::set<uint64_t>;
constexpr uint64_t kPage = 4096;
const Mac kMacM = mac(0x4d);

// The front-end's side of the log: a memfd it maps, one bit per 4 KiB guest page.
class LogMemory {
 public:
  explicit LogMemory(uint64_t bytes) : size_(bytes), fd_(memfd_create("vusw-dirty-log", MFD_CLOEXEC)) {
    REQUIRE(fd_.get() >= 0);
    REQUIRE(ftruncate(fd_.get(), static_cast<off_t>(bytes)) == 0);
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
    REQUIRE(p != MAP_FAILED);
    bits_ = static_cast<uint8_t*>(p);
  }
  ~LogMemory() { munmap(bits_, size_); }
  LogMemory(const LogMemory&) = delete;
  LogMemory& operator=(const LogMemory&) = delete;

  // A log covering guest memory up to `top` (exclusive), as QEMU sizes it.
  static uint64_t bytes_for(uint64_t top) { return (top / kPage + 7) / 8; }
  int fd() const { return fd_.get(); }
  uint64_t size() const { return size_; }
  // QEMU's collection: every set bit is read and cleared (atomically, as the switch sets them).
  Pages collect() {
    Pages pages;
    for (uint64_t i = 0; i < size_; ++i) {
      const uint8_t b = std::atomic_ref<uint8_t>(bits_[i]).exchange(0);
      for (unsigned bit = 0; bit < 8; ++bit)
        if (b & (1u << bit)) pages.insert(i * 8 + bit);
    }
    return pages;
  }

 private:
  uint64_t size_;
  UniqueFd fd_;
  uint8_t* bits_ = nullptr;
};

uint64_t memory_top(FakeFrontend& f) {
  uint64_t top = 0;
  for (const auto& r : f.mem().regions()) top = std::max(top, r->gpa() + r->size());
  return top;
}

// A copy of a guest's memory, to find the pages that changed.
struct Snapshot {
  explicit Snapshot(FakeFrontend& f) {
    for (const auto& r : f.mem().regions()) regions.push_back({r->gpa(), {r->host(), r->host() + r->size()}});
  }
  Pages changed_since(FakeFrontend& f) const {
    Pages pages;
    for (const auto& [gpa, bytes] : regions) {
      const std::byte* now = f.mem().host(gpa, bytes.size());
      for (uint64_t off = 0; off < bytes.size(); off += kPage)
        if (std::memcmp(now + off, bytes.data() + off, std::min<uint64_t>(kPage, bytes.size() - off)) != 0)
          pages.insert((gpa + off) / kPage);
    }
    return pages;
  }
  std::vector<std::pair<uint64_t, std::vector<std::byte>>> regions;
};

void add_range(Pages& pages, uint64_t gpa, uint64_t len) {
  for (uint64_t p = gpa / kPage; p <= (gpa + len - 1) / kPage; ++p) pages.insert(p);
}

// Pages of the guest memory the device writes to return buffers, over all rings.
Pages ring_pages(FakeFrontend& f) {
  Pages pages;
  for (uint32_t i = 0; i < f.num_rings(); ++i)
    for (const auto& [gpa, len] : f.ring(i).device_written()) add_range(pages, gpa, len);
  return pages;
}

Pages only(const Pages& a, const Pages& within) {
  Pages out;
  for (uint64_t p : a)
    if (within.contains(p)) out.insert(p);
  return out;
}

Pages except(const Pages& a, const Pages& without) {
  Pages out;
  for (uint64_t p : a)
    if (!without.contains(p)) out.insert(p);
  return out;
}

std::string pages_text(const Pages& p) {
  std::string s;
  for (uint64_t x : p) s += (s.empty() ? "" : " ") + std::to_string(x);
  return "{" + s + "}";
}

struct Layout {
  const char* name;
  FrontendOptions opt;
  uint32_t frames;  // per direction and queue pair, fewer than m's RX buffers take
};

std::vector<Layout> layouts() {
  std::vector<Layout> all;
  all.push_back({"split, mergeable 2 KiB buffers", {}, 60});
  FrontendOptions small;
  small.rx_buf_len = 512;  // a frame spans up to 3 merged buffers
  all.push_back({"split, mergeable 512 B buffers", small, 40});
  FrontendOptions plain;
  plain.mrg_rxbuf = false;
  plain.indirect = false;
  all.push_back({"split, no MRG_RXBUF, no INDIRECT", plain, 60});
  FrontendOptions legacy;
  legacy.version1 = false;
  legacy.mrg_rxbuf = false;
  all.push_back({"split, legacy 10-byte header", legacy, 60});
  FrontendOptions ordered;
  ordered.in_order = true;
  ordered.event_idx = true;
  all.push_back({"split, IN_ORDER + EVENT_IDX", ordered, 60});
  FrontendOptions packed;
  packed.packed = true;
  packed.ring_size = 250;
  all.push_back({"packed", packed, 60});
  FrontendOptions packed_small = packed;
  packed_small.rx_buf_len = 700;
  all.push_back({"packed, mergeable 700 B buffers", packed_small, 40});
  FrontendOptions mq;
  mq.queue_pairs = 2;
  all.push_back({"split, 2 queue pairs", mq, 40});
  FrontendOptions mq_packed = packed;
  mq_packed.queue_pairs = 2;
  all.push_back({"packed, 2 queue pairs", mq_packed, 40});
  return all;
}

struct Setup {
  explicit Setup(const FrontendOptions& mo, std::vector<std::string> extra = {})
      : d(config(std::move(extra))) {
    a = attach(d, "a");
    m = attach(d, "m", mo);
    REQUIRE_MESSAGE(a, d.log_tail());
    REQUIRE_MESSAGE(m, d.log_tail());
    REQUIRE(pair_switches(*a, kMacA, *m, kMacM, 4));
    log = std::make_unique<LogMemory>(LogMemory::bytes_for(memory_top(*m)));
  }
  static DaemonConfig config(std::vector<std::string> extra) {
    DaemonConfig cfg;
    cfg.servers = {"a", "m"};
    cfg.extra_args = std::move(extra);
    return cfg;
  }
  void start_logging() {
    REQUIRE(m->set_log_base(log->fd(), log->size()).status == AckStatus::Acked);
    REQUIRE(m->set_logging(true));
    (void)log->collect();  // what it marked before: not this test's business
  }
  uint64_t m_tx_packets() const { return json_u64(d.port("m"), "tx_packets"); }
  Daemon d;
  std::unique_ptr<FakeFrontend> a, m;
  std::unique_ptr<LogMemory> log;
};

// `n` frames of every size class (small, MTU, above the zero-copy threshold), from eight
// source MACs so that every RX queue of a multiqueue guest gets some.
std::vector<std::vector<std::byte>> frames_to(const Mac& dst, uint32_t n, uint32_t seq0) {
  std::vector<std::vector<std::byte>> out;
  for (uint32_t i = 0; i < n; ++i) {
    const Mac src = mac(static_cast<uint8_t>(0x80 + i % 8));
    out.push_back(make_frame(dst, src, seq0 + i, 60 + (i * 331) % 1455));
  }
  return out;
}

// A test frame to `dst` from any source, every byte as make_frame() made it.
bool intact(std::span<const std::byte> f, const Mac& dst) {
  if (f.size() < kMinTestFrame) return false;
  Mac src;
  std::memcpy(src.data(), f.data() + 6, 6);
  uint32_t seq = 0;
  return check_frame(f, dst, src, seq);
}

// Guest RX: a sends, m does nothing until the switch delivered everything.
void check_rx_logged(Setup& s, uint32_t n) {
  const Snapshot before(*s.m);
  const uint64_t delivered0 = s.m_tx_packets();
  const auto frames = frames_to(kMacM, n, 5000);
  for (const auto& f : frames) REQUIRE(s.a->send_frame(f, TxLayout::Single));
  s.a->kick(tx_ring(0));
  REQUIRE_MESSAGE(wait_until([&] { return s.m_tx_packets() >= delivered0 + n; }, milliseconds(5000)),
                  "delivered " << s.m_tx_packets() - delivered0 << " of " << n);
  std::this_thread::sleep_for(milliseconds(100));  // the burst's used index and its log marks
  const Pages changed = before.changed_since(*s.m);
  const Pages logged = s.log->collect();
  // Only now does m look at its RX rings (and repost, writing memory itself).
  s.m->clear_rx_written();
  const auto got = s.m->wait_rx(n, milliseconds(3000));
  REQUIRE(got.size() == n);
  for (const auto& f : got) CHECK(intact(f, kMacM));
  Pages buffers;
  for (const auto& [gpa, len] : s.m->rx_written()) add_range(buffers, gpa, len);
  const Pages rings = ring_pages(*s.m);
  INFO("logged " << pages_text(logged) << "\nchanged " << pages_text(changed) << "\nbuffers "
                 << pages_text(buffers));
  CHECK(except(logged, rings) == except(buffers, rings));  // every RX buffer byte, nothing else
  CHECK(only(logged, rings) == only(changed, rings));      // the used rings as they changed
  CHECK(except(changed, logged).empty());                  // nothing written behind the log's back
}

// Guest TX: m sends (copied and lent buffers), a receives.
void check_tx_logged(Setup& s, uint32_t n) {
  (void)s.m->reclaim_tx();
  const Snapshot before(*s.m);
  const auto frames = frames_to(kMacA, n, 9000);
  for (uint32_t i = 0; i < n; ++i)
    REQUIRE(s.m->send_frame(frames[i], i % 3 == 0 ? TxLayout::Chained : i % 3 == 1 ? TxLayout::Indirect : TxLayout::Single,
                            static_cast<uint16_t>(i % s.m->queue_pairs())));
  for (uint16_t q = 0; q < s.m->queue_pairs(); ++q) s.m->kick(tx_ring(q));
  REQUIRE(s.a->wait_rx(n, milliseconds(5000)).size() == n);
  size_t returned = 0;
  REQUIRE(wait_until([&] { return (returned += s.m->reclaim_tx()) >= n; }, milliseconds(3000)));
  std::this_thread::sleep_for(milliseconds(100));
  const Pages logged = s.log->collect();
  const Pages changed = before.changed_since(*s.m);
  const Pages rings = ring_pages(*s.m);
  INFO("logged " << pages_text(logged) << "\nchanged " << pages_text(changed));
  CHECK(!logged.empty());
  CHECK(except(logged, rings).empty());  // the TX buffers were only read
  if (!s.m->options().packed)            // split used rings are the device's alone
    CHECK(only(changed, rings) == logged);
  else                                   // packed: the driver wrote the descriptor ring too
    CHECK(except(logged, changed).empty());
}

}  // namespace

TEST_CASE("dirty log: every page the switch writes is logged, and only those, in every layout") {
  for (const Layout& l : layouts()) {
    CAPTURE(l.name);
    Setup s(l.opt);
    s.start_logging();
    const nlohmann::json port = s.d.port("m");
    CHECK(port["dirty_log"]["enabled"] == true);
    CHECK(port["dirty_log"]["size"] == s.log->size());
    check_rx_logged(s, l.frames);
    check_tx_logged(s, l.frames);
    CHECK(json_u64(s.d.port("m")["dirty_log"], "pages") > 0);
    CHECK(json_u64(s.d.port("m")["dirty_log"], "missed") == 0);
    CHECK(s.m->anomalies().empty());
    finish(s.d);
  }
}

TEST_CASE("dirty log: off until LOG_ALL, off again after it; zero copy returns are logged") {
  Setup s({});
  REQUIRE(s.m->set_log_base(s.log->fd(), s.log->size()).status == AckStatus::Acked);
  // A log base alone does not start logging (QEMU sends it before SET_FEATURES).
  REQUIRE(pair_switches(*s.a, kMacA, *s.m, kMacM, 16));
  CHECK(s.log->collect().empty());
  CHECK(s.d.port("m")["dirty_log"]["enabled"] == false);
  REQUIRE(s.m->set_logging(true));
  REQUIRE(pair_switches(*s.a, kMacA, *s.m, kMacM, 16));
  CHECK(!s.log->collect().empty());
  REQUIRE(s.m->set_logging(false));
  (void)s.log->collect();
  REQUIRE(pair_switches(*s.a, kMacA, *s.m, kMacM, 16));
  CHECK(s.log->collect().empty());
  CHECK(s.d.port("m")["dirty_log"]["enabled"] == false);
  finish(s.d);
}

TEST_CASE("dirty log: a new log base replaces the old one under traffic") {
  Setup s({});
  s.start_logging();
  LogMemory second(s.log->size());
  // Rounds of traffic both ways until the swap is two rounds behind.
  std::atomic<int> rounds_after{-1};
  std::vector<PumpResult> during;
  std::thread traffic([&] {
    while (rounds_after < 2) {
      std::vector<Flow> flows{{s.a.get(), s.m.get(), kMacA, kMacM, 1200, TxLayout::Single, 300},
                              {s.m.get(), s.a.get(), kMacM, kMacA, 700, TxLayout::Chained, 300}};
      during.push_back(pump(flows));
      if (rounds_after >= 0) ++rounds_after;
    }
  });
  std::this_thread::sleep_for(milliseconds(50));
  // pump() touches only rings and eventfds, set_log_base() only the socket: one
  // front-end can do both at once, as QEMU's migration thread and its vCPUs do.
  const Ack swapped = s.m->set_log_base(second.fd(), second.size());
  rounds_after = 0;
  traffic.join();
  CHECK(swapped.status == AckStatus::Acked);
  for (const PumpResult& r : during) {
    INFO(r.summary());
    CHECK(r.completed);
  }
  CHECK(!second.collect().empty());  // the new log gets the marks
  (void)s.log->collect();
  REQUIRE(pair_switches(*s.a, kMacA, *s.m, kMacM, 16));
  CHECK(s.log->collect().empty());  // the old one none (it is unmapped after the grace period)
  CHECK(!second.collect().empty());
  finish(s.d);
}

TEST_CASE("dirty log: GET_VRING_BASE publishes and logs everything before it answers") {
  FrontendOptions opt;
  Setup s(opt);
  s.start_logging();
  // Large frames are lent (zero copy) to a: their used entries are written when a's copy
  // frees them, possibly after the ring stopped. The stop must still log them.
  const auto frames = frames_to(kMacA, 100, 100);
  for (const auto& f : frames) (void)s.m->send_frame(f, TxLayout::Single);
  s.m->kick(tx_ring(0));
  const Snapshot before(*s.m);
  const auto base = s.m->get_vring_base(tx_ring(0));
  REQUIRE(base.has_value());
  std::this_thread::sleep_for(milliseconds(200));
  // Nothing the switch wrote after the reply, nothing it wrote before unlogged.
  const Pages logged = s.log->collect();
  const Pages changed = before.changed_since(*s.m);
  INFO("logged " << pages_text(logged) << "\nchanged " << pages_text(changed));
  CHECK(except(changed, logged).empty());
  // And after the reply the ring stays still.
  const Snapshot after(*s.m);
  std::this_thread::sleep_for(milliseconds(200));
  CHECK(after.changed_since(*s.m).empty());
  CHECK(s.log->collect().empty());
  finish(s.d);
}

TEST_CASE("dirty log: a log too small for the guest is counted, never written past") {
  Setup s({});
  // One byte of log: pages 0-7 only, far below the guest's memory at 1 GiB. Placed at
  // the end of a larger fd at an offset, with a canary after it.
  LogMemory tiny(2 * kPage);
  REQUIRE(s.m->set_log_base(tiny.fd(), 1, kPage).status == AckStatus::Acked);
  REQUIRE(s.m->set_logging(true));
  REQUIRE(pair_switches(*s.a, kMacA, *s.m, kMacM, 16));
  CHECK(tiny.collect().empty());  // neither the log byte (no guest page below 32 KiB) nor anything around it
  CHECK(json_u64(s.d.port("m")["dirty_log"], "missed") > 0);
  // Bad log bases fail and keep the session: no fd, a size past the fd.
  const uint64_t errors = json_sum(s.d.port("m"), "protocol_errors");
  LogMemory small(kPage);
  CHECK(s.m->set_log_base(small.fd(), 16 * kPage).status != AckStatus::Acked);
  s.m.reset();  // the back-end hangs up on a log base it cannot map: the front-end waited for a reply
  CHECK(json_sum(s.d.port("m"), "protocol_errors") > errors);
  s.m = attach(s.d, "m");
  REQUIRE(s.m);
  REQUIRE(pair_switches(*s.a, kMacA, *s.m, kMacM, 16));
  finish(s.d);
}

TEST_CASE("switch-over: SEND_RARP moves the guest's MAC to its new port at once and tells the peers") {
  // Guest m runs on port "src"; its migrated copy comes up on port "dst" (as a destination
  // QEMU with -incoming) and QEMU sends SEND_RARP before the guest sent anything there.
  DaemonConfig cfg;
  cfg.servers = {"a", "src", "dst"};
  Daemon d(cfg);
  auto a = attach(d, "a");
  auto src = attach(d, "src");
  REQUIRE_MESSAGE((a && src), d.log_tail());
  REQUIRE(pair_switches(*a, kMacA, *src, kMacM, 4));  // the FDB has m on src
  auto dst = attach(d, "dst");
  REQUIRE(dst);
  (void)a->poll_rx();
  REQUIRE(dst->send_rarp(kMacM).ok());
  // The peers learn it from the flooded RARP: broadcast, from m's MAC, ethertype 0x8035.
  const auto heard = a->wait_rx(1, milliseconds(2000));
  REQUIRE(heard.size() == 1);
  CHECK(std::to_integer<unsigned>(heard[0][0]) == 0xff);
  CHECK(frame_from(heard[0], kMacM) == false);  // not a test frame: a RARP
  CHECK(std::memcmp(heard[0].data() + 6, kMacM.data(), 6) == 0);
  CHECK(std::to_integer<unsigned>(heard[0][12]) == 0x80);
  CHECK(std::to_integer<unsigned>(heard[0][13]) == 0x35);
  (void)src->poll_rx();  // the old port hears the broadcast too
  // a's next frames to m go to dst only, without anyone touching the FDB.
  for (uint32_t i = 0; i < 8; ++i) REQUIRE(a->send_frame(make_frame(kMacM, kMacA, 300 + i, 200), TxLayout::Single));
  a->kick(tx_ring(0));
  const auto got = dst->wait_rx(8, milliseconds(2000));
  CHECK(got.size() == 8);
  for (const auto& f : got) CHECK(intact(f, kMacM));
  CHECK(src->wait_rx(1, milliseconds(300)).empty());
  auto fdb = d.ctl({{"cmd", "show_fdb"}});
  REQUIRE(fdb);
  bool on_dst = false;
  for (const auto& e : (*fdb)["fdb"])
    if (e["mac"] == "02000000004d") on_dst = e["port"] == "dst";
  CHECK(on_dst);
  finish(d);
}

}  // namespace vusw::it
