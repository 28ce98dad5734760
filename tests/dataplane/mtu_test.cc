// The switch's egress MTU check (drop_over_mtu, mtu.h) on real mbufs: a frame of MTU + 14
// bytes passes, one byte more is dropped and counted as mtu_exceeded on the destination;
// a tag in the frame allows 4 bytes more; segmentation requests are judged by their
// segments; chained frames by their whole length; the port's MTU follows the front-end's
// and comes back; the kept frames stay in order; nothing leaks.
#include "vusw/mtu.h"

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstring>
#include <vector>

#include <doctest/doctest.h>

#include "mbuf_helpers.h"

#include "vusw/port.h"

using namespace vusw;

namespace {

rte_mempool* pool()
{
    static rte_mempool* p = test::make_pool("mtu_test", 256);
    return p;
}

// A port the test only reads counters from.
class TestPort final : public Port {
public:
    explicit TestPort(const PortConfig& c) : Port("test", "test", 1) { set_config(c); }
    uint16_t receive(PmdContext&, uint16_t, rte_mbuf**, uint16_t) override { return 0; }
    void transmit(PmdContext&, uint16_t, rte_mbuf**, uint16_t) override {}
    std::string state() const override { return "test"; }
    uint64_t dropped() const { return totals().drops[std::size_t(Drop::mtu_exceeded)]; }
};

// A frame of `len` bytes (ethertype IPv4, or an 802.1Q tag first when `tagged`) in a
// chain of mbufs of at most 2000 bytes each.
rte_mbuf* frame(uint32_t len, bool tagged = false)
{
    std::vector<uint8_t> bytes(len, 0x5a);
    const uint8_t type[] = {0x81, 0x00, 0x00, 0x0a, 0x08, 0x00};
    std::memcpy(bytes.data() + 12, tagged ? type : type + 4, tagged ? 6 : 2);
    rte_mbuf* head = nullptr;
    for (uint32_t off = 0; off < len; off += 2000) {
        rte_mbuf* m = rte_pktmbuf_alloc(pool());
        REQUIRE(m != nullptr);
        const uint16_t n = uint16_t(std::min<uint32_t>(2000, len - off));
        std::memcpy(rte_pktmbuf_append(m, n), bytes.data() + off, n);
        if (head == nullptr)
            head = m;
        else
            REQUIRE(rte_pktmbuf_chain(head, m) == 0);
    }
    return head;
}

// A TCP/IPv4 frame of `len` bytes asking for segments of `segsz` (or UDP when `udp`).
rte_mbuf* segmented(uint32_t len, uint16_t segsz, bool udp = false)
{
    rte_mbuf* m = frame(len);
    m->ol_flags = RTE_MBUF_F_TX_IPV4 | (udp ? RTE_MBUF_F_TX_UDP_SEG : RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_TCP_CKSUM);
    m->l2_len = 14;
    m->l3_len = 20;
    m->l4_len = udp ? 8 : 20;
    m->tso_segsz = segsz;
    return m;
}

// drop_over_mtu on `frames`; what stayed.
std::vector<rte_mbuf*> check(Port& to, std::vector<rte_mbuf*> frames)
{
    const uint16_t kept = drop_over_mtu(to, 0, frames.data(), uint16_t(frames.size()));
    frames.resize(kept);
    return frames;
}

void free_all(const std::vector<rte_mbuf*>& frames)
{
    for (rte_mbuf* m : frames)
        rte_pktmbuf_free(m);
}

struct NoLeak {
    unsigned before = rte_mempool_in_use_count(pool());
    ~NoLeak() { CHECK(rte_mempool_in_use_count(pool()) == before); }
};

}  // namespace

TEST_CASE("default MTU 1500: 1514-byte frames pass, 1515 bytes are dropped and counted, the rest stays in order")
{
    NoLeak leak;
    TestPort port{PortConfig{}};
    CHECK(port.max_frame_len() == 1514);
    rte_mbuf* a = frame(60);
    rte_mbuf* b = frame(1514);
    rte_mbuf* c = frame(1515);
    rte_mbuf* d = frame(1514, true);
    rte_mbuf* e = frame(1518, true);  // MTU + header + tag
    rte_mbuf* f = frame(1519, true);
    rte_mbuf* g = frame(9014);
    const std::vector<rte_mbuf*> kept = check(port, {a, b, c, d, e, f, g});
    CHECK(kept == std::vector<rte_mbuf*>{a, b, d, e});
    CHECK(port.dropped() == 3);
    free_all(kept);

    const std::vector<rte_mbuf*> none = {frame(100), frame(1514, true)};
    CHECK(check(port, none) == none);  // nothing over: the burst as it was
    CHECK(port.dropped() == 3);
    free_all(none);
}

TEST_CASE("jumbo: an explicit mtu=9000 passes a chained 9014-byte frame, not 9015")
{
    NoLeak leak;
    PortConfig c;
    c.mtu = 9000;
    c.mtu_given = true;
    TestPort port{c};
    CHECK(port.effective_mtu() == EffectiveMtu{9000, MtuSource::config});
    rte_mbuf* ok = frame(9014);
    CHECK(ok->nb_segs == 5);
    const std::vector<rte_mbuf*> kept = check(port, {frame(9015), ok, frame(9019, true), frame(9018, true)});
    REQUIRE(kept.size() == 2);
    CHECK(kept[0] == ok);
    CHECK(kept[1]->pkt_len == 9018);
    CHECK(port.dropped() == 2);
    free_all(kept);
}

TEST_CASE("segmentation requests are judged by their segments, never by their length")
{
    NoLeak leak;
    TestPort port{PortConfig{}};
    // 54 bytes of headers + 1460 = 1514: every segment fits MTU 1500.
    rte_mbuf* tso = segmented(9000, 1460);
    rte_mbuf* udp = segmented(6000, 1472, true);  // 42 + 1472 = 1514
    rte_mbuf* small = segmented(1000, 8000);      // asks for more than it has: one frame of 1000
    const std::vector<rte_mbuf*> kept =
        check(port, {tso, segmented(9000, 1461), udp, segmented(6000, 1473, true), small});
    CHECK(kept == std::vector<rte_mbuf*>{tso, udp, small});
    CHECK(port.dropped() == 2);
    free_all(kept);
}

TEST_CASE("the front-end's MTU applies while it is set; the default comes back without it")
{
    NoLeak leak;
    TestPort port{PortConfig{}};
    port.set_frontend_mtu(1000);
    CHECK(port.effective_mtu() == EffectiveMtu{1000, MtuSource::frontend});
    CHECK(port.max_frame_len() == 1014);
    std::vector<rte_mbuf*> kept = check(port, {frame(1014), frame(1015)});
    CHECK(kept.size() == 1);
    CHECK(port.dropped() == 1);
    free_all(kept);

    port.set_frontend_mtu(std::nullopt);
    CHECK(port.effective_mtu() == EffectiveMtu{1500, MtuSource::default_mtu});
    kept = check(port, {frame(1015)});
    CHECK(kept.size() == 1);
    CHECK(port.dropped() == 1);
    free_all(kept);
}

TEST_CASE("a shared frame dropped for one port stays whole for the others")
{
    NoLeak leak;
    TestPort small{PortConfig{}};
    rte_mbuf* m = frame(4000);
    rte_pktmbuf_refcnt_update(m, 1);  // flooded to two ports
    std::vector<rte_mbuf*> burst = {m};
    CHECK(check(small, burst).empty());
    CHECK(small.dropped() == 1);
    CHECK(rte_mbuf_refcnt_read(m) == 1);
    CHECK(m->pkt_len == 4000);
    rte_pktmbuf_free(m);
}
