// Postcopy live migration (protocol feature PAGEFAULT; issue 10). The fake front-end
// plays the destination QEMU: it takes the switch's userfaultfd (POSTCOPY_ADVISE), lets
// it register guest memory (POSTCOPY_LISTEN), then makes pages "not arrived yet" by
// punching them out of its memfd. The switch's PMD core faults on them when it delivers
// frames; a thread here serves the faults as QEMU's fault thread does (puts the page
// back through its own mapping, wakes the faulting core) after a delay, during which
// the control socket must keep answering. Then every frame arrives intact.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "fixture.h"

namespace vusw::it {
namespace {

using std::chrono::milliseconds;
const Mac kMacM = mac(0x4d);
constexpr uint64_t kPage = 4096;

bool postcopy_offered(const FakeFrontend& f) { return (f.protocol_features() & pfeat::kPagefault) != 0; }

// QEMU's side of the userfaultfd: faults come with the switch's addresses; the page is
// placed through the front-end's own mapping of the same memfd, then the switch woken.
class FaultServer {
 public:
  FaultServer(int uffd, uint64_t switch_base, std::byte* own_base, uint64_t size, milliseconds first_delay)
      : uffd_(uffd), switch_base_(switch_base), own_base_(own_base), size_(size), delay_(first_delay) {
    thread_ = std::thread([this] { run(); });
  }
  ~FaultServer() {
    stop_ = true;
    thread_.join();
  }
  unsigned faults() const { return faults_; }
  unsigned foreign() const { return foreign_; }  // faults outside the region we expect
  bool serving() const { return serving_; }

 private:
  void run() {
    while (!stop_) {
      pollfd p{uffd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      uffd_msg msg{};
      if (read(uffd_, &msg, sizeof(msg)) != sizeof(msg) || msg.event != UFFD_EVENT_PAGEFAULT) continue;
      const uint64_t addr = msg.arg.pagefault.address & ~(kPage - 1);
      if (addr < switch_base_ || addr >= switch_base_ + size_) {
        ++foreign_;
        continue;
      }
      if (faults_++ == 0) {  // the page is "still on the source host" for a while
        serving_ = true;
        std::this_thread::sleep_for(delay_);
      }
      // Placing the page: any write through our mapping allocates it in the shared memfd.
      std::atomic_ref<uint8_t>(*reinterpret_cast<uint8_t*>(own_base_ + (addr - switch_base_))).store(0);
      uffdio_range wake{addr, kPage};
      ioctl(uffd_, UFFDIO_WAKE, &wake);
      serving_ = false;
    }
  }
  int uffd_;
  uint64_t switch_base_;
  std::byte* own_base_;
  uint64_t size_;
  milliseconds delay_;
  std::atomic<bool> stop_{false}, serving_{false};
  std::atomic<unsigned> faults_{0}, foreign_{0};
  std::thread thread_;
};

struct Setup {
  explicit Setup(FrontendOptions mo = {}) : d(config()) {
    a = attach(d, "a");
    m = attach(d, "m", mo);
    REQUIRE_MESSAGE(a, d.log_tail());
    REQUIRE_MESSAGE(m, d.log_tail());
    REQUIRE(pair_switches(*a, kMacA, *m, kMacM, 4));
  }
  static DaemonConfig config() {
    DaemonConfig cfg;
    cfg.servers = {"a", "m"};
    return cfg;
  }
  Daemon d;
  std::unique_ptr<FakeFrontend> a, m;
};

}  // namespace

TEST_CASE("postcopy: a PMD core faulting on a page not yet migrated waits for it; the control thread does not") {
  Setup s;
  if (!postcopy_offered(*s.m)) {
    MESSAGE("SKIP: the switch does not offer PAGEFAULT here (no userfaultfd in this kernel)");
    return;
  }
  UniqueFd uffd = s.m->postcopy_advise();
  REQUIRE(uffd);
  REQUIRE(s.m->postcopy_listen().ok());
  // A new region arrives while listening, as at the destination's start: its reply tells
  // where the switch mapped it, the front-end acknowledges.
  MemRegion& extra = s.m->mem().add(0x80000000, 2 << 20);
  const auto base = s.m->add_mem_reg_postcopy(extra);
  REQUIRE(base.has_value());
  CHECK(*base != extra.uva());  // the switch's own mapping, not ours
  REQUIRE(s.m->postcopy_memory_done(Req::AddMemReg));
  REQUIRE(s.m->sync());
  CHECK(json_sum(s.d.port("m"), "protocol_errors") == 0);  // the acknowledgement is not a request

  // The RX buffers of m "have not arrived": their pages are punched out of the memfd.
  MemRegion& main = s.m->main_region();
  DriverRing& rx = s.m->rx();
  const uint64_t slots = rx.slot_gpa(0), slots_len = uint64_t{rx.size()} * DriverRing::kSlotSize;
  REQUIRE(main.contains(slots, slots_len));
  REQUIRE(fallocate(main.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(slots - main.gpa()),
                    static_cast<off_t>(slots_len)) == 0);
  // The switch maps main with its own base; the region's reply is how QEMU learns it.
  const auto main_base = s.m->add_mem_reg_postcopy(main);  // a repeat: answered, not mapped again
  REQUIRE(main_base.has_value());
  REQUIRE(s.m->postcopy_memory_done(Req::AddMemReg));
  FaultServer server(uffd.get(), *main_base, main.host(), main.size(), milliseconds(400));

  const uint32_t n = 40;
  std::vector<std::vector<std::byte>> sent;
  for (uint32_t i = 0; i < n; ++i) {
    sent.push_back(make_frame(kMacM, kMacA, 7000 + i, 60 + i * 37));
    REQUIRE(s.a->send_frame(sent.back(), TxLayout::Single));
  }
  s.a->kick(tx_ring(0));
  REQUIRE(wait_until([&] { return server.serving(); }, milliseconds(3000)));
  // The PMD core waits in the kernel; the control thread answers meanwhile.
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(s.d.port("a").is_object());
  CHECK(std::chrono::steady_clock::now() - t0 < milliseconds(300));
  const auto got = s.m->wait_rx(n, milliseconds(5000));
  REQUIRE(got.size() == n);
  for (uint32_t i = 0; i < n; ++i) CHECK(got[i] == sent[i]);
  CHECK(server.faults() > 0);
  CHECK(server.foreign() == 0);
  CHECK(s.m->postcopy_end().ok());
  // Postcopy over: the memory is all here, the pair switches as before.
  REQUIRE(pair_switches(*s.a, kMacA, *s.m, kMacM, 16));
  const nlohmann::json port = s.d.port("m");
  CHECK(json_u64(port["messages"], "POSTCOPY_ADVISE") == 1);
  CHECK(json_u64(port["messages"], "POSTCOPY_LISTEN") == 1);
  CHECK(json_u64(port["messages"], "POSTCOPY_END") == 1);
  CHECK(json_sum(port, "protocol_errors") == 0);
  CHECK(s.m->anomalies().empty());
  finish(s.d);
}

TEST_CASE("postcopy: SET_MEM_TABLE while listening is answered with the switch's addresses; misuse is refused") {
  FrontendOptions opt;
  opt.mem_slots = false;  // the SET_MEM_TABLE path
  Setup s(opt);
  if (!postcopy_offered(*s.m)) {
    MESSAGE("SKIP: the switch does not offer PAGEFAULT here (no userfaultfd in this kernel)");
    return;
  }
  // LISTEN before ADVISE: refused with a non-zero answer (QEMU waits for one and then
  // fails the migration); the session stays.
  const uint64_t errors = json_sum(s.d.port("m"), "protocol_errors");
  CHECK(s.m->postcopy_listen().failed());
  CHECK(json_sum(s.d.port("m"), "protocol_errors") == errors + 1);
  UniqueFd uffd = s.m->postcopy_advise();
  REQUIRE(uffd);
  UniqueFd again = s.m->postcopy_advise();  // one per queue pair device in QEMU 7.2: the same fd
  REQUIRE(again);
  REQUIRE(s.m->postcopy_listen().ok());
  const MemRegion* regions[] = {&s.m->main_region()};
  MemTableMsg t{};
  t.nregions = 1;
  t.regions[0] = regions[0]->desc();
  const int fds[] = {regions[0]->fd()};
  const uint32_t size = 8 + sizeof(MemRegionDesc);
  REQUIRE(s.m->conn().send(static_cast<uint32_t>(Req::SetMemTable), kVersion1,
                           std::span(reinterpret_cast<const std::byte*>(&t), size), fds));
  RecvResult r = s.m->conn().recv(milliseconds(2000));
  REQUIRE(r.status == RecvStatus::Ok);
  CHECK(r.msg.hdr.request == static_cast<uint32_t>(Req::SetMemTable));
  REQUIRE(r.msg.payload.size() == size);
  MemTableMsg back{};
  std::memcpy(&back, r.msg.payload.data(), size);
  CHECK(back.nregions == 1);
  CHECK(back.regions[0].guest_phys_addr == regions[0]->gpa());
  CHECK(back.regions[0].userspace_addr != 0);
  CHECK(back.regions[0].userspace_addr != regions[0]->uva());
  REQUIRE(s.m->postcopy_memory_done(Req::SetMemTable));  // must not read as an empty table
  CHECK(s.m->postcopy_end().ok());
  REQUIRE(s.m->sync());
  CHECK(json_u64(s.d.port("m"), "mem_regions") == 1);
  REQUIRE(pair_switches(*s.a, kMacA, *s.m, kMacM, 16));
  finish(s.d);
}

}  // namespace vusw::it
