// Offloads: virtio-net headers to mbuf requests and back, software TCP segmentation and
// checksums. Checksums are verified with the test's own RFC 1071 sum, not DPDK's.
#include "vusw/offload.h"

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstring>
#include <numeric>
#include <vector>

#include <doctest/doctest.h>

#include "mbuf_helpers.h"

using namespace vusw;
using test::bytes_of;

namespace {

constexpr uint8_t kTcp = 6, kUdp = 17;
constexpr uint8_t kCwr = 0x80;
// A guest that negotiated every offload it may ask for on TX (CSUM, HOST_TSO4/6, HOST_ECN, HOST_USO).
constexpr OffloadCaps kAllowAll{true, true, true, true, true, true};

rte_mempool* pool()
{
    static rte_mempool* p = test::make_pool("offload_test", 4096);
    return p;
}

// RFC 1071 over big-endian 16-bit words, not complemented.
uint32_t sum16(const std::vector<uint8_t>& b, std::size_t from, std::size_t to, uint32_t acc = 0)
{
    for (std::size_t i = from; i < to; i += 2)
        acc += uint32_t(b[i]) << 8 | (i + 1 < to ? b[i + 1] : 0);
    return acc;
}

uint16_t fold(uint32_t acc)
{
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return uint16_t(acc);
}

void put16(std::vector<uint8_t>& b, std::size_t at, uint16_t v)
{
    b[at] = uint8_t(v >> 8);
    b[at + 1] = uint8_t(v);
}

void put32(std::vector<uint8_t>& b, std::size_t at, uint32_t v)
{
    put16(b, at, uint16_t(v >> 16));
    put16(b, at + 2, uint16_t(v));
}

uint16_t get16(const std::vector<uint8_t>& b, std::size_t at)
{
    return uint16_t(b[at] << 8 | b[at + 1]);
}

uint32_t get32(const std::vector<uint8_t>& b, std::size_t at)
{
    return uint32_t(get16(b, at)) << 16 | get16(b, at + 2);
}

struct Frame {
    std::vector<uint8_t> bytes;
    bool v6;
    std::size_t l3, l4;  // offsets
};

// Ethernet + IPv4 (or IPv6) + TCP (20 B header, flags PSH|ACK|FIN) or UDP + payload.
Frame make_frame(bool v6, uint8_t proto, std::size_t payload)
{
    Frame f{std::vector<uint8_t>(14), v6, 14, 0};
    f.bytes[0] = 2, f.bytes[6] = 2, f.bytes[11] = 1;
    put16(f.bytes, 12, v6 ? 0x86dd : 0x0800);
    const std::size_t l4_size = proto == kTcp ? 20 : 8;
    if (v6) {
        f.bytes.resize(14 + 40);
        f.bytes[14] = 0x60;
        put16(f.bytes, 18, uint16_t(l4_size + payload));
        f.bytes[20] = proto;
        f.bytes[21] = 64;
        for (int i = 0; i < 16; ++i)
            f.bytes[22 + i] = uint8_t(0x20 + i), f.bytes[38 + i] = uint8_t(0x40 + i);
        f.l4 = 54;
    } else {
        f.bytes.resize(14 + 20);
        f.bytes[14] = 0x45;
        put16(f.bytes, 16, uint16_t(20 + l4_size + payload));
        put16(f.bytes, 18, 0x1234);  // id
        f.bytes[22] = 64;
        f.bytes[23] = proto;
        put32(f.bytes, 26, 0x0a000001);
        put32(f.bytes, 30, 0x0a000002);
        put16(f.bytes, 24, uint16_t(~fold(sum16(f.bytes, 14, 34))));
        f.l4 = 34;
    }
    f.bytes.resize(f.l4 + l4_size);
    put16(f.bytes, f.l4, 40000);
    put16(f.bytes, f.l4 + 2, 5201);
    if (proto == kTcp) {
        put32(f.bytes, f.l4 + 4, 1000000);  // seq
        f.bytes[f.l4 + 12] = 5 << 4;        // data offset
        f.bytes[f.l4 + 13] = 0x08 | 0x10 | 0x01;
    } else {
        put16(f.bytes, f.l4 + 4, uint16_t(8 + payload));
    }
    for (std::size_t i = 0; i < payload; ++i)
        f.bytes.push_back(uint8_t(i * 7 + 3));
    return f;
}

// Pseudo-header sum of `b` (an IP frame at offset 14), with the L4 length or without.
uint32_t pseudo(const std::vector<uint8_t>& b, bool v6, std::size_t l4, bool with_length)
{
    const uint32_t l4_len = uint32_t(b.size() - l4);
    uint32_t acc = v6 ? sum16(b, 22, 54) + b[20] : sum16(b, 26, 34) + b[23];
    return with_length ? acc + l4_len : acc;
}

// Whether the L4 checksum of a frame verifies (sum over pseudo-header and segment == 0xffff).
bool l4_checksum_ok(const std::vector<uint8_t>& b, bool v6, std::size_t l4)
{
    return fold(sum16(b, l4, b.size(), pseudo(b, v6, l4, true))) == 0xffff;
}

// What a guest asking for a partial checksum writes: the pseudo-header sum in the field.
void make_partial(Frame& f, uint8_t proto, bool tso)
{
    const std::size_t field = f.l4 + (proto == kTcp ? 16 : 6);
    put16(f.bytes, field, fold(pseudo(f.bytes, f.v6, f.l4, !tso)));
}

rte_mbuf* to_mbuf(const std::vector<uint8_t>& b)
{
    rte_mbuf* head = rte_pktmbuf_alloc(pool());
    REQUIRE(head != nullptr);
    std::size_t done = 0;
    rte_mbuf* tail = head;
    while (done < b.size()) {  // chained 2 KiB mbufs, like a copied guest frame
        if (rte_pktmbuf_tailroom(tail) == 0) {
            rte_mbuf* next = rte_pktmbuf_alloc(pool());
            REQUIRE(rte_pktmbuf_chain(head, next) == 0);
            tail = next;
        }
        const std::size_t n = std::min<std::size_t>(b.size() - done, rte_pktmbuf_tailroom(tail));
        std::memcpy(rte_pktmbuf_append(tail, uint16_t(n)), b.data() + done, n);
        if (tail != head)
            head->pkt_len += uint32_t(n);
        done += n;
    }
    return head;
}

virtio::NetHeader csum_header(const Frame& f, uint8_t proto)
{
    virtio::NetHeader h{};
    h.flags = virtio::kNetHdrNeedsCsum;
    h.csum_start = uint16_t(f.l4);
    h.csum_offset = proto == kTcp ? 16 : 6;
    return h;
}

virtio::NetHeader tso_header(const Frame& f, uint16_t mss)
{
    virtio::NetHeader h = csum_header(f, kTcp);
    h.gso_type = f.v6 ? virtio::kGsoTcpv6 : virtio::kGsoTcpv4;
    h.gso_size = mss;
    h.hdr_len = uint16_t(f.l4 + 20);
    return h;
}

virtio::NetHeader uso_header(const Frame& f, uint16_t size)
{
    virtio::NetHeader h = csum_header(f, kUdp);
    h.gso_type = virtio::kGsoUdpL4;
    h.gso_size = size;
    h.hdr_len = uint16_t(f.l4 + 8);
    return h;
}

}  // namespace

TEST_CASE("a guest's partial checksum and TSO requests become mbuf requests")
{
    Frame f = make_frame(false, kTcp, 3000);
    rte_mbuf* m = to_mbuf(f.bytes);
    REQUIRE(offload_from_header(tso_header(f, 1448), m, true, kAllowAll));
    CHECK(unsigned(m->l2_len) == 14);
    CHECK(unsigned(m->l3_len) == 20);
    CHECK(unsigned(m->l4_len) == 20);
    CHECK(unsigned(m->tso_segsz) == 1448);
    CHECK((m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) != 0);
    CHECK((m->ol_flags & RTE_MBUF_F_TX_IPV4) != 0);
    CHECK((m->ol_flags & RTE_MBUF_F_TX_L4_MASK) == RTE_MBUF_F_TX_TCP_CKSUM);
    // Back to a guest that takes TSO: the same request.
    const virtio::NetHeader back = offload_header(m, OffloadCaps{true, true, true});
    CHECK(back.flags == virtio::kNetHdrNeedsCsum);
    CHECK(back.gso_type == virtio::kGsoTcpv4);
    CHECK(back.gso_size == 1448);
    CHECK(back.hdr_len == 54);
    CHECK(back.csum_start == 34);
    CHECK(back.csum_offset == 16);
    CHECK_FALSE(needs_software(m, OffloadCaps{true, true, false}));
    CHECK(needs_software(m, OffloadCaps{true, false, true}));
    CHECK(needs_software(m, OffloadCaps{}));
    rte_pktmbuf_free(m);

    Frame u = make_frame(true, kUdp, 100);
    m = to_mbuf(u.bytes);
    REQUIRE(offload_from_header(csum_header(u, kUdp), m, false, kAllowAll));
    CHECK((m->ol_flags & RTE_MBUF_F_TX_L4_MASK) == RTE_MBUF_F_TX_UDP_CKSUM);
    CHECK((m->ol_flags & RTE_MBUF_F_TX_IPV6) != 0);
    CHECK(unsigned(m->l3_len) == 40);
    CHECK(offload_header(m, OffloadCaps{true, false, false}).csum_offset == 6);
    CHECK(offload_header(m, OffloadCaps{}).flags == 0);  // the guest takes none: software's job
    rte_pktmbuf_free(m);
}

TEST_CASE("headers that do not fit their frame are refused")
{
    Frame f = make_frame(false, kTcp, 100);
    const auto refused = [&](virtio::NetHeader h, bool writable = true) {
        rte_mbuf* m = to_mbuf(f.bytes);
        const bool ok = offload_from_header(h, m, writable, kAllowAll);
        rte_pktmbuf_free(m);
        return !ok;
    };
    virtio::NetHeader h = csum_header(f, kTcp);
    h.csum_start = uint16_t(f.bytes.size() - 1);
    CHECK(refused(h));  // checksum field past the end
    h = tso_header(f, 1448);
    h.flags = 0;
    CHECK(refused(h));  // segmentation without a partial checksum
    h = tso_header(f, 0);
    CHECK(refused(h));  // no segment size
    h = tso_header(f, 1448);
    h.gso_type = virtio::kGsoTcpv6;
    CHECK(refused(h));  // IPv6 segmentation of an IPv4 frame
    h.gso_type = 3;     // UDP fragmentation offload: not offered
    CHECK(refused(h));
    h = csum_header(f, kTcp);
    h.csum_start = 20;  // not a TCP/UDP request (offset 4): finished now, impossible if not writable
    h.csum_offset = 4;
    CHECK(refused(h, false));
    CHECK_FALSE(refused(csum_header(f, kTcp), false));
}

TEST_CASE("a partial checksum that is not TCP/UDP over IP is finished at once")
{
    Frame f = make_frame(false, kTcp, 64);
    // An odd request: checksum from byte 20 of the frame, stored 4 bytes in.
    put16(f.bytes, 24, 0);
    rte_mbuf* m = to_mbuf(f.bytes);
    virtio::NetHeader h{};
    h.flags = virtio::kNetHdrNeedsCsum;
    h.csum_start = 20;
    h.csum_offset = 4;
    REQUIRE(offload_from_header(h, m, true, kAllowAll));
    CHECK((m->ol_flags & RTE_MBUF_F_TX_L4_MASK) == 0);
    const std::vector<uint8_t> b = bytes_of(m);
    CHECK(fold(sum16(b, 20, b.size())) == 0xffff);
    rte_pktmbuf_free(m);
}

TEST_CASE("software TCP segmentation: lengths, ids, sequence numbers, flags, checksums, payload")
{
    for (const bool v6 : {false, true}) {
        for (const bool partial : {false, true}) {
            CAPTURE(v6);
            CAPTURE(partial);
            constexpr std::size_t kPayload = 10000;
            constexpr uint16_t kMss = 1448;
            Frame f = make_frame(v6, kTcp, kPayload);
            make_partial(f, kTcp, true);
            rte_mbuf* m = to_mbuf(f.bytes);
            REQUIRE(offload_from_header(tso_header(f, kMss), m, true, kAllowAll));
            rte_pktmbuf_refcnt_update(m, 1);  // flooded to another port too: must stay untouched
            const std::vector<uint8_t> before = bytes_of(m);
            PortCounters counters;
            std::array<rte_mbuf*, kMaxSoftwareSegments> out{};
            const uint16_t n = resolve_offloads(&m, 1, OffloadCaps{partial, false, false}, pool(), counters, out.data(),
                                                uint16_t(out.size()));
            REQUIRE(n == (kPayload + kMss - 1) / kMss);
            CHECK(bytes_of(m) == before);
            rte_pktmbuf_free(m);
            std::size_t payload_seen = 0;
            for (uint16_t i = 0; i < n; ++i) {
                std::vector<uint8_t> s = bytes_of(out[i]);
                const std::size_t chunk = std::min<std::size_t>(kMss, kPayload - payload_seen);
                REQUIRE(s.size() == f.l4 + 20 + chunk);
                CHECK(std::equal(s.begin() + std::ptrdiff_t(f.l4 + 20), s.end(),
                                 f.bytes.begin() + std::ptrdiff_t(f.l4 + 20 + payload_seen)));
                if (v6) {
                    CHECK(get16(s, 18) == 20 + chunk);
                } else {
                    CHECK(get16(s, 16) == 20 + 20 + chunk);
                    CHECK(get16(s, 18) == 0x1234 + i);
                    CHECK(fold(sum16(s, 14, 34)) == 0xffff);
                }
                CHECK(get32(s, f.l4 + 4) == 1000000 + payload_seen);
                const bool last = i + 1 == n;
                CHECK(bool(s[f.l4 + 13] & 0x01) == last);  // FIN
                CHECK(bool(s[f.l4 + 13] & 0x08) == last);  // PSH
                CHECK(bool(s[f.l4 + 13] & 0x10));          // ACK on all
                if (partial) {
                    // Left for the destination: the request, and the pseudo-header sum in the field.
                    CHECK((out[i]->ol_flags & RTE_MBUF_F_TX_L4_MASK) == RTE_MBUF_F_TX_TCP_CKSUM);
                    CHECK(unsigned(out[i]->l2_len + out[i]->l3_len) == f.l4);
                    put16(s, f.l4 + 16, uint16_t(~fold(sum16(s, f.l4, s.size()))));
                } else {
                    CHECK((out[i]->ol_flags & RTE_MBUF_F_TX_L4_MASK) == 0);
                }
                CHECK(l4_checksum_ok(s, v6, f.l4));
                payload_seen += chunk;
                rte_pktmbuf_free(out[i]);
            }
            CHECK(payload_seen == kPayload);
        }
    }
}

TEST_CASE("software checksums: into a private copy when the frame is shared; UDP and TCP")
{
    for (const uint8_t proto : {kTcp, kUdp}) {
        CAPTURE(int(proto));
        Frame f = make_frame(false, proto, 1000);
        make_partial(f, proto, false);
        rte_mbuf* m = to_mbuf(f.bytes);
        REQUIRE(offload_from_header(csum_header(f, proto), m, false, kAllowAll));
        rte_pktmbuf_refcnt_update(m, 1);
        PortCounters counters;
        std::array<rte_mbuf*, 4> out{};
        REQUIRE(resolve_offloads(&m, 1, OffloadCaps{}, pool(), counters, out.data(), 4) == 1);
        CHECK(out[0] != m);
        CHECK(bytes_of(m) == f.bytes);  // the shared original is not written
        CHECK((out[0]->ol_flags & RTE_MBUF_F_TX_L4_MASK) == 0);
        CHECK(l4_checksum_ok(bytes_of(out[0]), false, f.l4));
        rte_pktmbuf_free(m);
        rte_pktmbuf_free(out[0]);
    }
}

TEST_CASE("a frame the destination takes as it is passes untouched; too many segments is a counted drop")
{
    Frame f = make_frame(false, kTcp, 10000);
    make_partial(f, kTcp, true);
    rte_mbuf* m = to_mbuf(f.bytes);
    REQUIRE(offload_from_header(tso_header(f, 1448), m, true, kAllowAll));
    PortCounters counters;
    std::array<rte_mbuf*, kMaxSoftwareSegments> out{};
    REQUIRE(resolve_offloads(&m, 1, OffloadCaps{true, true, true}, pool(), counters, out.data(), 64) == 1);
    CHECK(out[0] == m);
    rte_pktmbuf_free(m);

    m = to_mbuf(f.bytes);
    REQUIRE(offload_from_header(tso_header(f, 100), m, true, kAllowAll));  // 100 segments
    CHECK(resolve_offloads(&m, 1, OffloadCaps{}, pool(), counters, out.data(), 64) == 0);
    CHECK(counters.drops[std::size_t(Drop::too_many_segments)].get() == 1);
    CHECK(rte_mempool_in_use_count(pool()) == 0);  // nothing leaked on any path
}

TEST_CASE("a frame whose checksum a NIC verified reaches a GUEST_CSUM guest as DATA_VALID")
{
    Frame f = make_frame(false, kUdp, 10);
    rte_mbuf* m = to_mbuf(f.bytes);
    m->ol_flags |= RTE_MBUF_F_RX_L4_CKSUM_GOOD;
    CHECK(offload_header(m, OffloadCaps{true, false, false}).flags == virtio::kNetHdrDataValid);
    CHECK(offload_header(m, OffloadCaps{}).flags == 0);
    rte_pktmbuf_free(m);
}

TEST_CASE("a guest asks only for what it negotiated: TSO, USO, the ECN bit, a checksum")
{
    Frame f = make_frame(false, kTcp, 3000);
    Frame u = make_frame(true, kUdp, 3000);
    const auto accepted = [](const Frame& fr, virtio::NetHeader h, OffloadCaps allowed) {
        rte_mbuf* m = to_mbuf(fr.bytes);
        const bool ok = offload_from_header(h, m, true, allowed);
        rte_pktmbuf_free(m);
        return ok;
    };
    virtio::NetHeader ecn = tso_header(f, 1448);
    ecn.gso_type |= virtio::kGsoEcn;
    CHECK(accepted(f, ecn, kAllowAll));
    OffloadCaps no_ecn = kAllowAll;
    no_ecn.ecn = false;
    CHECK_FALSE(accepted(f, ecn, no_ecn));  // the ECN bit without HOST_ECN
    CHECK(accepted(f, tso_header(f, 1448), no_ecn));
    OffloadCaps no_tso4 = kAllowAll;
    no_tso4.tso4 = false;
    CHECK_FALSE(accepted(f, tso_header(f, 1448), no_tso4));  // TSO without HOST_TSO4
    CHECK(accepted(f, csum_header(f, kTcp), no_tso4));
    CHECK_FALSE(accepted(f, csum_header(f, kTcp), OffloadCaps{}));  // NEEDS_CSUM without CSUM

    CHECK(accepted(u, uso_header(u, 1000), kAllowAll));
    OffloadCaps no_uso = kAllowAll;
    no_uso.uso4 = no_uso.uso6 = false;
    CHECK_FALSE(accepted(u, uso_header(u, 1000), no_uso));  // USO without HOST_USO
    virtio::NetHeader h = uso_header(u, 1000);
    h.gso_type |= virtio::kGsoEcn;
    CHECK_FALSE(accepted(u, h, kAllowAll));  // ECN is a TCP thing
    CHECK_FALSE(accepted(u, uso_header(u, 0), kAllowAll));
    virtio::NetHeader tcp_uso = tso_header(f, 1448);
    tcp_uso.gso_type = virtio::kGsoUdpL4;
    CHECK_FALSE(accepted(f, tcp_uso, kAllowAll));  // UDP segmentation of a TCP checksum request
    h = tso_header(f, 1448);
    h.gso_type = virtio::kGsoEcn;  // the ECN bit alone: no segmentation to go with it
    CHECK_FALSE(accepted(f, h, kAllowAll));
    CHECK(rte_mempool_in_use_count(pool()) == 0);
}

TEST_CASE("ECN: a TSO frame with CWR set passes whole only to a GUEST_ECN guest, else CWR stays on the first segment")
{
    Frame f = make_frame(false, kTcp, 5000);
    f.bytes[f.l4 + 13] |= kCwr;
    make_partial(f, kTcp, true);
    virtio::NetHeader h = tso_header(f, 1448);
    h.gso_type |= virtio::kGsoEcn;
    rte_mbuf* m = to_mbuf(f.bytes);
    REQUIRE(offload_from_header(h, m, true, kAllowAll));
    const OffloadCaps tso{true, true, true};
    OffloadCaps tso_ecn = tso;
    tso_ecn.ecn = true;
    CHECK_FALSE(needs_software(m, tso_ecn));
    CHECK(offload_header(m, tso_ecn).gso_type == (virtio::kGsoTcpv4 | virtio::kGsoEcn));
    CHECK(needs_software(m, tso));  // GUEST_TSO4 without GUEST_ECN
    CHECK(offload_header(m, tso).gso_type == virtio::kGsoTcpv4);  // never the bit without ECN

    PortCounters counters;
    std::array<rte_mbuf*, kMaxSoftwareSegments> out{};
    const uint16_t n = resolve_offloads(&m, 1, tso, pool(), counters, out.data(), uint16_t(out.size()));
    REQUIRE(n == 4);
    for (uint16_t i = 0; i < n; ++i) {
        const std::vector<uint8_t> s = bytes_of(out[i]);
        CHECK(bool(s[f.l4 + 13] & kCwr) == (i == 0));
        CHECK((out[i]->ol_flags & RTE_MBUF_F_TX_TCP_SEG) == 0);
        CHECK(offload_header(out[i], tso).gso_type == virtio::kGsoNone);
    }
    rte_pktmbuf_free_bulk(out.data(), n);

    // Without CWR the frame passes whole to a TSO guest, with no ECN bit even for an ECN guest.
    Frame plain = make_frame(false, kTcp, 5000);
    m = to_mbuf(plain.bytes);
    REQUIRE(offload_from_header(tso_header(plain, 1448), m, true, kAllowAll));
    CHECK_FALSE(needs_software(m, tso));
    CHECK(offload_header(m, tso_ecn).gso_type == virtio::kGsoTcpv4);
    rte_pktmbuf_free(m);
    CHECK(counters.drops[std::size_t(Drop::bad_offload)].get() == 0);
    CHECK(rte_mempool_in_use_count(pool()) == 0);
}

TEST_CASE("software UDP segmentation (USO): every piece a whole datagram, not an IP fragment")
{
    for (const bool v6 : {false, true}) {
        for (const bool partial : {false, true}) {
            CAPTURE(v6);
            CAPTURE(partial);
            constexpr std::size_t kPayload = 7000;
            constexpr uint16_t kSize = 1400;
            Frame f = make_frame(v6, kUdp, kPayload);
            make_partial(f, kUdp, false);
            rte_mbuf* m = to_mbuf(f.bytes);
            REQUIRE(offload_from_header(uso_header(f, kSize), m, true, kAllowAll));
            CHECK((m->ol_flags & RTE_MBUF_F_TX_UDP_SEG) != 0);
            CHECK(unsigned(m->l4_len) == 8);
            OffloadCaps caps{partial, true, true};  // takes TCP segmentation, not UDP
            REQUIRE(needs_software(m, caps));
            rte_pktmbuf_refcnt_update(m, 1);  // flooded too: must stay untouched
            PortCounters counters;
            std::array<rte_mbuf*, kMaxSoftwareSegments> out{};
            const uint16_t n = resolve_offloads(&m, 1, caps, pool(), counters, out.data(), uint16_t(out.size()));
            REQUIRE(n == 5);
            CHECK(bytes_of(m) == f.bytes);
            rte_pktmbuf_free(m);
            std::size_t seen = 0;
            for (uint16_t i = 0; i < n; ++i) {
                std::vector<uint8_t> s = bytes_of(out[i]);
                const std::size_t chunk = std::min<std::size_t>(kSize, kPayload - seen);
                REQUIRE(s.size() == f.l4 + 8 + chunk);
                CHECK(std::equal(s.begin() + std::ptrdiff_t(f.l4 + 8), s.end(),
                                 f.bytes.begin() + std::ptrdiff_t(f.l4 + 8 + seen)));
                CHECK(get16(s, f.l4) == 40000);  // ports kept
                CHECK(get16(s, f.l4 + 2) == 5201);
                CHECK(get16(s, f.l4 + 4) == 8 + chunk);  // its own UDP length
                if (v6) {
                    CHECK(get16(s, 18) == 8 + chunk);
                    CHECK(s[20] == kUdp);  // no fragment extension header
                } else {
                    CHECK(get16(s, 16) == 20 + 8 + chunk);
                    CHECK(get16(s, 18) == 0x1234 + i);
                    CHECK((get16(s, 20) & 0x3fff) == 0);  // neither MF nor a fragment offset
                    CHECK(fold(sum16(s, 14, 34)) == 0xffff);
                }
                if (partial) {
                    CHECK((out[i]->ol_flags & RTE_MBUF_F_TX_L4_MASK) == RTE_MBUF_F_TX_UDP_CKSUM);
                    CHECK(unsigned(out[i]->l2_len + out[i]->l3_len) == f.l4);
                    put16(s, f.l4 + 6, uint16_t(~fold(sum16(s, f.l4, s.size()))));
                } else {
                    CHECK((out[i]->ol_flags & RTE_MBUF_F_TX_L4_MASK) == 0);
                }
                CHECK((out[i]->ol_flags & RTE_MBUF_F_TX_UDP_SEG) == 0);
                CHECK(l4_checksum_ok(s, v6, f.l4));
                seen += chunk;
            }
            CHECK(seen == kPayload);
            rte_pktmbuf_free_bulk(out.data(), n);
        }
    }
    CHECK(rte_mempool_in_use_count(pool()) == 0);
}

TEST_CASE("USO passes through whole to a guest with GUEST_USO4/6 of its IP version")
{
    for (const bool v6 : {false, true}) {
        CAPTURE(v6);
        Frame f = make_frame(v6, kUdp, 4000);
        make_partial(f, kUdp, false);
        rte_mbuf* m = to_mbuf(f.bytes);
        REQUIRE(offload_from_header(uso_header(f, 1200), m, true, kAllowAll));
        OffloadCaps caps{true, false, false};
        (v6 ? caps.uso6 : caps.uso4) = true;
        CHECK_FALSE(needs_software(m, caps));
        OffloadCaps other{true, false, false};
        (v6 ? other.uso4 : other.uso6) = true;
        CHECK(needs_software(m, other));
        const virtio::NetHeader h = offload_header(m, caps);
        CHECK(h.flags == virtio::kNetHdrNeedsCsum);
        CHECK(h.gso_type == virtio::kGsoUdpL4);
        CHECK(h.gso_size == 1200);
        CHECK(h.hdr_len == f.l4 + 8);
        CHECK(h.csum_start == f.l4);
        CHECK(h.csum_offset == 6);
        PortCounters counters;
        std::array<rte_mbuf*, 4> out{};
        REQUIRE(resolve_offloads(&m, 1, caps, pool(), counters, out.data(), 4) == 1);
        CHECK(out[0] == m);
        CHECK(bytes_of(m) == f.bytes);
        rte_pktmbuf_free(m);
    }
    CHECK(rte_mempool_in_use_count(pool()) == 0);
}
