// VXLAN on mbufs (vxlan.h): a frame that is ours alone gets its outer header in its
// headroom; a shared one (a flood's) or one without headroom gets a new header mbuf and
// is not written; decapsulation gives back the inner frame byte for byte, padding and
// offload flags gone; an empty pool leaves the frame as it was; nothing leaks.
#include "vusw/vxlan.h"

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstring>
#include <vector>

#include <doctest/doctest.h>

#include "mbuf_helpers.h"

using namespace vusw;

namespace {

const VtepConfig kLocal{{0x02, 0, 0, 0, 0, 0x01}, 0x0a630001, 4789, 42};
const VxlanOuter kToLocal{{0x02, 0, 0, 0, 0, 0x02}, {0x02, 0, 0, 0, 0, 0x01}, 0x0a630002, 0x0a630001, 4789, 42};

rte_mempool* pool()
{
    static rte_mempool* p = test::make_pool("vxlan_test", 64);
    return p;
}

std::vector<uint8_t> inner_bytes(uint16_t len)
{
    std::vector<uint8_t> b(len);
    for (uint16_t i = 0; i < len; ++i)
        b[i] = uint8_t(i * 7 + 3);
    return b;
}

rte_mbuf* frame(const std::vector<uint8_t>& bytes)
{
    rte_mbuf* m = rte_pktmbuf_alloc(pool());
    REQUIRE(m != nullptr);
    std::memcpy(rte_pktmbuf_append(m, uint16_t(bytes.size())), bytes.data(), bytes.size());
    return m;
}

std::vector<uint8_t> contents(const rte_mbuf* m)
{
    std::vector<uint8_t> out(rte_pktmbuf_pkt_len(m));
    const void* p = rte_pktmbuf_read(m, 0, uint32_t(out.size()), out.data());
    REQUIRE(p != nullptr);
    if (p != out.data())  // contiguous: a pointer into the mbuf
        std::memcpy(out.data(), p, out.size());
    return out;
}

// Classifies and decapsulates `m` as the tunnel's receive side does.
void decap_ok(rte_mbuf* m)
{
    std::vector<uint8_t> head = contents(m);
    const UnderlayVerdict v = classify_underlay(std::as_bytes(std::span(head)), rte_pktmbuf_pkt_len(m), kLocal);
    REQUIRE(v.kind == UnderlayKind::vxlan);
    REQUIRE(vxlan_decap(m, v));
}

unsigned in_use()
{
    return rte_mempool_in_use_count(pool());
}

}  // namespace

TEST_CASE("a frame that is ours alone is encapsulated in its headroom and decapsulated back")
{
    const unsigned before = in_use();
    const auto bytes = inner_bytes(98);
    rte_mbuf* m = frame(bytes);
    m->ol_flags = RTE_MBUF_F_RX_L4_CKSUM_GOOD;
    rte_mbuf* out = vxlan_encap(m, kToLocal, 50000, pool(), false);
    REQUIRE(out == m);
    CHECK(m->nb_segs == 1);
    CHECK(rte_pktmbuf_pkt_len(m) == 98 + 50);
    CHECK(m->ol_flags == 0);
    CHECK(in_use() == before + 1);
    decap_ok(m);
    CHECK(contents(m) == bytes);
    CHECK(m->ol_flags == 0);
    rte_pktmbuf_free(m);
    CHECK(in_use() == before);
}

TEST_CASE("a shared frame gets a header mbuf per remote and its bytes stay as they were")
{
    const unsigned before = in_use();
    const auto bytes = inner_bytes(200);
    rte_mbuf* m = frame(bytes);
    rte_pktmbuf_refcnt_update(m, 1);  // two remotes share it (head-end replication)
    VxlanOuter second = kToLocal;
    second.dst_ip = 0x0a630003;
    rte_mbuf* a = vxlan_encap(m, kToLocal, 50000, pool(), false);
    rte_mbuf* b = vxlan_encap(m, second, 50001, pool(), true);
    REQUIRE(a != nullptr);
    REQUIRE(b != nullptr);
    CHECK(a != m);
    CHECK(b != m);
    CHECK(a->next == m);
    CHECK(a->nb_segs == 2);
    CHECK(rte_pktmbuf_pkt_len(b) == 250);
    CHECK(b->ol_flags == (RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM));
    CHECK(unsigned(b->l2_len) == 14);
    CHECK(unsigned(b->l3_len) == 20);
    CHECK(rte_pktmbuf_data_len(m) == 200);  // untouched
    CHECK(std::memcmp(rte_pktmbuf_mtod(m, const uint8_t*), bytes.data(), bytes.size()) == 0);
    const auto outer_b = contents(b);
    CHECK(outer_b[33] == 3);  // to the second remote
    CHECK(std::equal(bytes.begin(), bytes.end(), contents(a).begin() + 50));
    rte_pktmbuf_free(a);
    rte_pktmbuf_free(b);
    CHECK(in_use() == before);
}

TEST_CASE("a frame without headroom is chained behind a header mbuf")
{
    const unsigned before = in_use();
    const auto bytes = inner_bytes(60);
    rte_mbuf* m = rte_pktmbuf_alloc(pool());
    REQUIRE(m != nullptr);
    m->data_off = 0;  // no headroom: the frame starts at its buffer (as a guest's lent buffer does)
    std::memcpy(rte_pktmbuf_append(m, uint16_t(bytes.size())), bytes.data(), bytes.size());
    rte_mbuf* out = vxlan_encap(m, kToLocal, 50000, pool(), false);
    REQUIRE(out != nullptr);
    CHECK(out != m);
    CHECK(rte_pktmbuf_mtod(m, uint8_t*) == static_cast<uint8_t*>(m->buf_addr));
    const auto whole = contents(out);
    CHECK(std::equal(bytes.begin(), bytes.end(), whole.begin() + 50));
    rte_pktmbuf_free(out);
    CHECK(in_use() == before);
}

TEST_CASE("an empty pool leaves a shared frame as it was")
{
    rte_mbuf* m = frame(inner_bytes(64));
    rte_pktmbuf_refcnt_update(m, 1);
    std::vector<rte_mbuf*> taken;
    while (rte_mbuf* t = rte_pktmbuf_alloc(pool()))
        taken.push_back(t);
    CHECK(vxlan_encap(m, kToLocal, 50000, pool(), false) == nullptr);
    CHECK(rte_pktmbuf_pkt_len(m) == 64);
    CHECK(rte_mbuf_refcnt_read(m) == 2);
    for (rte_mbuf* t : taken)
        rte_pktmbuf_free(t);
    rte_pktmbuf_free(m);
    rte_pktmbuf_free(m);
}

TEST_CASE("decapsulation drops the outer padding; padding spread over segments is refused")
{
    const unsigned before = in_use();
    const auto bytes = inner_bytes(14);  // a bare Ethernet header: the outer frame needs padding
    rte_mbuf* m = frame(bytes);
    rte_mbuf* out = vxlan_encap(m, kToLocal, 50000, pool(), false);
    REQUIRE(out == m);
    std::memset(rte_pktmbuf_append(m, 10), 0, 10);
    decap_ok(m);
    CHECK(contents(m) == bytes);
    rte_pktmbuf_free(m);

    m = frame(inner_bytes(64));
    out = vxlan_encap(m, kToLocal, 50000, pool(), false);
    rte_mbuf* tail1 = frame(std::vector<uint8_t>(8, 0));
    rte_mbuf* tail2 = frame(std::vector<uint8_t>(8, 0));
    REQUIRE(rte_pktmbuf_chain(tail1, tail2) == 0);
    REQUIRE(rte_pktmbuf_chain(out, tail1) == 0);
    const auto whole = contents(out);
    const UnderlayVerdict v = classify_underlay(std::as_bytes(std::span(whole)), rte_pktmbuf_pkt_len(out), kLocal);
    REQUIRE(v.kind == UnderlayKind::vxlan);
    CHECK_FALSE(vxlan_decap(out, v));
    CHECK(rte_pktmbuf_pkt_len(out) == 50 + 64 + 16u);
    rte_pktmbuf_free(out);
    CHECK(in_use() == before);
}
