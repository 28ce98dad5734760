// VLAN tags on mbufs (vlan_reform): rewritten in place only in a buffer the caller alone
// holds; shared (flooded) frames and lent guest buffers are never written, they get a
// new head; offload requests follow the tag; nothing leaks.
#include "vusw/vlan.h"

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstring>
#include <vector>

#include <doctest/doctest.h>

#include "mbuf_helpers.h"

using namespace vusw;
using test::bytes_of;
using test::mbuf_of;

namespace {

using Bytes = std::vector<uint8_t>;

rte_mempool* pool()
{
    static rte_mempool* p = test::make_pool("vlan_test", 1024);
    return p;
}

// A frame of `len` bytes to 02:..:0b from 02:..:0a, ethertype 0x0800, payload pattern;
// tagged with `vid` after the addresses when vid >= 0.
Bytes frame(std::size_t len, int vid = -1)
{
    Bytes f(len);
    const uint8_t addrs[12] = {2, 0, 0, 0, 0, 0xb, 2, 0, 0, 0, 0, 0xa};
    std::memcpy(f.data(), addrs, 12);
    f[12] = 0x08;
    for (std::size_t i = 13; i < len; ++i)
        f[i] = uint8_t(i * 7);
    if (vid >= 0)
        f.insert(f.begin() + 12, {0x81, 0x00, uint8_t(vid >> 8), uint8_t(vid)});
    return f;
}

// A guest buffer lent to an mbuf (external buffer), as the vhost port lends it.
struct Lent {
    Bytes memory;
    rte_mbuf_ext_shared_info shinfo{};
    int freed = 0;
    rte_mbuf* m = nullptr;
    explicit Lent(const Bytes& f) : memory(f)
    {
        shinfo.free_cb = [](void*, void* self) { ++static_cast<Lent*>(self)->freed; };
        shinfo.fcb_opaque = this;
        rte_mbuf_ext_refcnt_set(&shinfo, 1);
        m = rte_pktmbuf_alloc(pool());
        REQUIRE(m != nullptr);
        rte_pktmbuf_attach_extbuf(m, memory.data(), rte_iova_t(uintptr_t(memory.data())), uint16_t(memory.size()), &shinfo);
        m->data_len = uint16_t(memory.size());
        m->pkt_len = uint32_t(memory.size());
    }
};

struct NoLeak {
    unsigned before = rte_mempool_in_use_count(pool());
    ~NoLeak() { CHECK(rte_mempool_in_use_count(pool()) == before); }
};

}  // namespace

TEST_CASE("an mbuf the caller alone holds is tagged, untagged and retagged in place")
{
    NoLeak leak;
    rte_mbuf* m = mbuf_of(pool(), frame(64));
    m->ol_flags = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_TCP_CKSUM;
    m->l2_len = 14;
    m->l3_len = 20;
    rte_mbuf* t = vlan_reform(m, true, false, 0x200a, pool());
    CHECK(t == m);
    CHECK(bytes_of(t) == frame(64, 0x200a));
    CHECK(unsigned(t->l2_len) == 18);  // the checksum request still points at the L4 header
    CHECK(unsigned(t->l3_len) == 20);
    CHECK(vlan_reform(t, true, true, 0x0014, pool()) == m);
    CHECK(bytes_of(m) == frame(64, 0x0014));
    CHECK(vlan_reform(m, true, true, std::nullopt, pool()) == m);
    CHECK(bytes_of(m) == frame(64));
    CHECK(unsigned(m->l2_len) == 14);
    rte_pktmbuf_free(m);
}

TEST_CASE("a shared frame is never written: each variant is a new head, the original stays as it was")
{
    NoLeak leak;
    for (const std::size_t len : {64, 1500}) {
        CAPTURE(len);
        rte_mbuf* m = mbuf_of(pool(), frame(len, 10));
        rte_pktmbuf_refcnt_update(m, 1);  // a flood gave it to two ports
        rte_mbuf* untagged = vlan_reform(m, false, true, std::nullopt, pool());
        rte_mbuf* retagged = vlan_reform(m, false, true, 0x0014, pool());
        REQUIRE(untagged != nullptr);
        REQUIRE(retagged != nullptr);
        CHECK(untagged != m);
        CHECK(retagged != m);
        CHECK(bytes_of(m) == frame(len, 10));
        CHECK(bytes_of(untagged) == frame(len));
        CHECK(bytes_of(retagged) == frame(len, 0x0014));
        // A long frame keeps its first 128 bytes after the header in the head (flow hash).
        CHECK(untagged->nb_segs == (len > 512 ? 2 : 1));
        if (len > 512)
            CHECK(untagged->data_len == 12 + 128);
        rte_pktmbuf_free(untagged);
        rte_pktmbuf_free(retagged);
        rte_pktmbuf_free(m);
        rte_pktmbuf_free(m);
    }
}

TEST_CASE("a lent guest buffer is never written and goes back once, when the last variant is freed")
{
    NoLeak leak;
    for (const bool own : {true, false}) {
        CAPTURE(own);
        Lent lent(frame(1500));
        rte_mbuf* t = vlan_reform(lent.m, own, false, 0x000a, pool());
        REQUIRE(t != nullptr);
        CHECK(t != lent.m);
        CHECK(bytes_of(t) == frame(1500, 0x000a));
        CHECK(lent.memory == frame(1500));  // not one byte of guest memory written
        if (!own)
            rte_pktmbuf_free(lent.m);
        CHECK(lent.freed == 0);
        rte_pktmbuf_free(t);
        CHECK(lent.freed == 1);
    }
    Lent short_frame(frame(64, 10));
    rte_mbuf* u = vlan_reform(short_frame.m, true, true, std::nullopt, pool());
    REQUIRE(u != nullptr);
    CHECK(short_frame.freed == 1);  // copied whole: the loan ends at once
    CHECK(bytes_of(u) == frame(64));
    CHECK(short_frame.memory == frame(64, 10));
    rte_pktmbuf_free(u);
}

TEST_CASE("a new head carries the offload requests, with l2_len following the tag")
{
    NoLeak leak;
    rte_mbuf* m = mbuf_of(pool(), frame(1500, 10));
    m->ol_flags = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_TCP_CKSUM | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
    m->l2_len = 18;
    m->l3_len = 20;
    rte_pktmbuf_refcnt_update(m, 1);
    rte_mbuf* v = vlan_reform(m, false, true, std::nullopt, pool());
    REQUIRE(v != nullptr);
    CHECK(v->ol_flags == m->ol_flags);
    CHECK(unsigned(v->l2_len) == 14);
    CHECK(unsigned(v->l3_len) == 20);
    CHECK(unsigned(m->l2_len) == 18);
    rte_pktmbuf_free(v);
    rte_pktmbuf_free(m);
    rte_pktmbuf_free(m);
}

TEST_CASE("a multi-segment frame: the tail segments follow the new head")
{
    NoLeak leak;
    const Bytes f = frame(3000);
    rte_mbuf* m = mbuf_of(pool(), Bytes(f.begin(), f.begin() + 1000));
    rte_mbuf* tail = mbuf_of(pool(), Bytes(f.begin() + 1000, f.end()));
    REQUIRE(rte_pktmbuf_chain(m, tail) == 0);
    rte_pktmbuf_refcnt_update(m, 1);  // every segment, as a flood does
    rte_mbuf* v = vlan_reform(m, false, false, 0x0064, pool());
    REQUIRE(v != nullptr);
    CHECK(bytes_of(v) == frame(3000, 0x0064));
    CHECK(bytes_of(m) == f);
    rte_pktmbuf_free(m);
    CHECK(bytes_of(v) == frame(3000, 0x0064));  // still whole after one holder let go
    rte_pktmbuf_free(v);
    rte_pktmbuf_free(m);
}
