// Checksum and segmentation offloads: virtio-net header <-> mbuf requests, and software
// checksums, TCP segmentation and UDP segmentation for destinations that do not take a
// request.
#include "vusw/offload.h"

#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace vusw {
namespace {

constexpr uint64_t kL4Mask = RTE_MBUF_F_TX_L4_MASK;
constexpr uint64_t kSegmentation = RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_UDP_SEG;
constexpr uint16_t kTcpCsumOffset = 16, kUdpCsumOffset = 6;
constexpr uint8_t kTcpFin = 0x01, kTcpPsh = 0x08, kTcpCwr = 0x80;
constexpr uint32_t kMaxHeaders = 256;  // Ethernet + tags + IP (+ options/extensions) + TCP

// Bytes [off, off+len) of a possibly chained mbuf, copied to `buf` when they are not
// in one segment; nullptr past the end.
const uint8_t* read_at(const rte_mbuf* m, uint32_t off, uint32_t len, void* buf)
{
    return static_cast<const uint8_t*>(rte_pktmbuf_read(m, off, len, buf));
}

uint16_t load_be16(const uint8_t* p)
{
    return uint16_t(p[0] << 8 | p[1]);
}

// Writes 2 bytes at `off` of `m` (which must be writable and long enough), across a
// segment boundary if need be.
void store_at(rte_mbuf* m, uint32_t off, const void* src, uint32_t len)
{
    const auto* from = static_cast<const uint8_t*>(src);
    for (rte_mbuf* s = m; s != nullptr && len > 0; s = s->next) {
        if (off >= s->data_len) {
            off -= s->data_len;
            continue;
        }
        const uint32_t n = std::min<uint32_t>(len, s->data_len - off);
        std::memcpy(rte_pktmbuf_mtod_offset(s, uint8_t*, off), from, n);
        from += n;
        len -= n;
        off = 0;
    }
}

// Ethernet header length (VLAN tags included) and the ethertype after it; 0 if short.
uint32_t l2_length(const rte_mbuf* m, uint16_t& type)
{
    uint8_t buf[4];
    uint32_t off = 12;
    for (int tags = 0; tags < 3; ++tags) {
        const uint8_t* p = read_at(m, off, 2, buf);
        if (p == nullptr)
            return 0;
        type = load_be16(p);
        if (type != RTE_ETHER_TYPE_VLAN && type != RTE_ETHER_TYPE_QINQ)
            return off + 2;
        off += 4;
    }
    return 0;
}

// The internet checksum of m's bytes from `start` to the end, folded and complemented,
// with the field at start+offset taken as it is (a partial checksum: the pseudo-header
// sum is already there). UDP's "no checksum" 0 becomes 0xffff.
bool finish_checksum(rte_mbuf* m, uint32_t start, uint32_t offset)
{
    uint16_t raw = 0;
    if (start >= m->pkt_len || rte_raw_cksum_mbuf(m, start, m->pkt_len - start, &raw) != 0)
        return false;
    uint16_t sum = uint16_t(~raw);
    if (sum == 0 && offset == kUdpCsumOffset)
        sum = 0xffff;
    store_at(m, start + offset, &sum, sizeof(sum));
    return true;
}

bool shared_or_lent(const rte_mbuf* m)
{
    for (const rte_mbuf* s = m; s != nullptr; s = s->next)
        if (RTE_MBUF_HAS_EXTBUF(s) || RTE_MBUF_CLONED(s) || rte_mbuf_refcnt_read(s) > 1)
            return true;
    return false;
}

// A private, writable copy of `m` when it is shared (flooded) or lent (guest memory);
// `m` itself otherwise. The original is released.
rte_mbuf* writable(rte_mbuf* m, rte_mempool* pool)
{
    if (!shared_or_lent(m))
        return m;
    rte_mbuf* copy = rte_pktmbuf_copy(m, pool, 0, UINT32_MAX);
    rte_pktmbuf_free(m);
    return copy;
}

// The checksum `m` asks for, computed and stored; the request cleared.
bool checksum_in_software(rte_mbuf* m)
{
    const uint32_t start = uint32_t(m->l2_len) + m->l3_len;
    const uint32_t offset = (m->ol_flags & kL4Mask) == RTE_MBUF_F_TX_UDP_CKSUM ? kUdpCsumOffset : kTcpCsumOffset;
    m->ol_flags &= ~(kL4Mask | kSegmentation);
    return finish_checksum(m, start, offset);
}

// Whether the TCP header of `m` (where l2_len + l3_len point) has CWR set: the ECN
// "congestion window reduced" signal a TSO frame must carry on its first segment only.
bool tcp_cwr(const rte_mbuf* m)
{
    uint8_t buf[1];
    const uint8_t* flags = read_at(m, uint32_t(m->l2_len) + m->l3_len + 13, 1, buf);
    return flags != nullptr && (*flags & kTcpCwr) != 0;
}

// Appends bytes [off, off+len) of `src` to the mbuf chain `head`, chaining new mbufs
// from `pool` as the tail fills.
bool append_from(rte_mbuf* head, const rte_mbuf* src, uint32_t off, uint32_t len, rte_mempool* pool)
{
    rte_mbuf* tail = rte_pktmbuf_lastseg(head);
    while (len > 0) {
        if (rte_pktmbuf_tailroom(tail) == 0) {
            rte_mbuf* next = rte_pktmbuf_alloc(pool);
            if (next == nullptr || rte_pktmbuf_chain(head, next) != 0) {
                rte_pktmbuf_free(next);
                return false;
            }
            tail = next;
        }
        const uint32_t n = std::min<uint32_t>(len, rte_pktmbuf_tailroom(tail));
        uint8_t* dst = rte_pktmbuf_mtod_offset(tail, uint8_t*, tail->data_len);
        const uint8_t* from = read_at(src, off, n, dst);
        if (from == nullptr)
            return false;
        if (from != dst)
            std::memcpy(dst, from, n);
        tail->data_len = uint16_t(tail->data_len + n);
        head->pkt_len += n;
        off += n;
        len -= n;
    }
    return true;
}

// Fixes the IP header of one segment (at the start of `seg`, in its first mbuf) cut from
// `whole`, carrying `l4_bytes` of L4 header and payload: lengths, IPv4 id and header
// checksum. Returns the pseudo-header sum with this segment's length (the partial sum
// its L4 checksum field takes) and sets seg's L2/L3 lengths and IP flag.
uint16_t fix_ip(rte_mbuf* seg, const rte_mbuf* whole, uint16_t index, uint32_t l4_bytes)
{
    const uint32_t l3 = whole->l2_len;
    seg->l2_len = whole->l2_len;
    seg->l3_len = whole->l3_len;
    seg->l4_len = whole->l4_len;
    if (whole->ol_flags & RTE_MBUF_F_TX_IPV4) {
        auto* ip = rte_pktmbuf_mtod_offset(seg, rte_ipv4_hdr*, l3);
        ip->total_length = rte_cpu_to_be_16(uint16_t(whole->l3_len + l4_bytes));
        ip->packet_id = rte_cpu_to_be_16(uint16_t(rte_be_to_cpu_16(ip->packet_id) + index));
        ip->hdr_checksum = 0;
        ip->hdr_checksum = rte_ipv4_cksum(ip);
        seg->ol_flags = RTE_MBUF_F_TX_IPV4;
        return rte_ipv4_phdr_cksum(ip, 0);
    }
    auto* ip = rte_pktmbuf_mtod_offset(seg, rte_ipv6_hdr*, l3);
    ip->payload_len = rte_cpu_to_be_16(uint16_t(whole->l3_len - sizeof(rte_ipv6_hdr) + l4_bytes));
    seg->ol_flags = RTE_MBUF_F_TX_IPV6;
    return rte_ipv6_phdr_cksum(ip, 0);
}

// Fixes the headers of one segment cut from a TCP frame: IP (fix_ip), sequence number,
// flags (FIN/PSH on the last only, CWR on the first only), the checksum or partial sum.
void fix_tcp_segment(rte_mbuf* seg, const rte_mbuf* whole, uint16_t index, bool last, uint32_t payload, bool partial)
{
    auto* tcp = rte_pktmbuf_mtod_offset(seg, rte_tcp_hdr*, uint32_t(whole->l2_len) + whole->l3_len);
    tcp->sent_seq = rte_cpu_to_be_32(rte_be_to_cpu_32(tcp->sent_seq) + uint32_t(index) * whole->tso_segsz);
    if (!last)
        tcp->tcp_flags &= uint8_t(~(kTcpFin | kTcpPsh));
    if (index != 0)
        tcp->tcp_flags &= uint8_t(~kTcpCwr);
    tcp->cksum = fix_ip(seg, whole, index, whole->l4_len + payload);
    seg->ol_flags |= RTE_MBUF_F_TX_TCP_CKSUM;
    if (!partial)
        checksum_in_software(seg);
}

// Fixes the headers of one datagram cut from a UDP frame (USO): IP (fix_ip), the UDP
// length, the checksum or partial sum. Each piece is a datagram of its own, not an IP
// fragment.
void fix_udp_segment(rte_mbuf* seg, const rte_mbuf* whole, uint16_t index, uint32_t payload, bool partial)
{
    auto* udp = rte_pktmbuf_mtod_offset(seg, rte_udp_hdr*, uint32_t(whole->l2_len) + whole->l3_len);
    const uint32_t l4_bytes = sizeof(rte_udp_hdr) + payload;
    udp->dgram_len = rte_cpu_to_be_16(uint16_t(l4_bytes));
    udp->dgram_cksum = fix_ip(seg, whole, index, l4_bytes);
    seg->ol_flags |= RTE_MBUF_F_TX_UDP_CKSUM;
    if (!partial)
        checksum_in_software(seg);
}

// Cuts a TCP frame asking for segmentation into tso_segsz pieces (software TSO), or a UDP
// frame into tso_segsz-byte datagrams (software USO). Returns
// how many segments went to out[] (0: none, `why` says why; `whole` is freed either way).
uint16_t segment(rte_mbuf* whole, bool partial, rte_mempool* pool, rte_mbuf** out, uint16_t max, Drop& why)
{
    const uint32_t headers = uint32_t(whole->l2_len) + whole->l3_len + whole->l4_len;
    const uint32_t mss = whole->tso_segsz;
    const uint32_t payload = whole->pkt_len > headers ? whole->pkt_len - headers : 0;
    const uint32_t count = std::max<uint32_t>(1, (payload + mss - 1) / std::max<uint32_t>(mss, 1));
    uint16_t made = 0;
    why = Drop::too_many_segments;
    if (mss != 0 && count <= max) {
        why = Drop::no_mbuf;
        for (; made < count; ++made) {
            const uint32_t take = std::min(mss, payload - made * mss);
            rte_mbuf* seg = rte_pktmbuf_alloc(pool);
            if (seg == nullptr || headers > rte_pktmbuf_tailroom(seg) || !append_from(seg, whole, 0, headers, pool) ||
                !append_from(seg, whole, headers + made * mss, take, pool)) {
                rte_pktmbuf_free(seg);
                break;
            }
            if (whole->ol_flags & RTE_MBUF_F_TX_UDP_SEG)
                fix_udp_segment(seg, whole, made, take, partial);
            else
                fix_tcp_segment(seg, whole, made, made + 1u == count, take, partial);
            out[made] = seg;
        }
        if (made != count) {
            rte_pktmbuf_free_bulk(out, made);
            made = 0;
        }
    }
    rte_pktmbuf_free(whole);
    return made;
}

// Whether a guest that negotiated `allowed` may ask for segmentation `gso` (the ECN bit
// stripped) of a frame of this IP family (virtio 1.2 §5.1.6.2: HOST_TSO4/6, HOST_USO).
bool gso_allowed(uint8_t gso, bool ip4, OffloadCaps allowed)
{
    switch (gso) {
    case virtio::kGsoTcpv4:
        return ip4 && allowed.tso4;
    case virtio::kGsoTcpv6:
        return !ip4 && allowed.tso6;
    case virtio::kGsoUdpL4:
        return ip4 ? allowed.uso4 : allowed.uso6;
    default:
        return false;
    }
}

// Records on `m` (its checksum request already set) the segmentation a guest header asks
// for; false if it does not fit the frame or was not negotiated.
bool segmentation_from_header(const virtio::NetHeader& h, rte_mbuf* m, bool ip4, bool tcp, OffloadCaps allowed)
{
    const uint8_t gso = h.gso_type & uint8_t(~virtio::kGsoEcn);
    const bool ecn = (h.gso_type & virtio::kGsoEcn) != 0, uso = gso == virtio::kGsoUdpL4;
    // The ECN bit only with HOST_ECN and only on TCP segmentation (§5.1.6.2).
    if (h.gso_size == 0 || tcp == uso || !gso_allowed(gso, ip4, allowed) || (ecn && (uso || !allowed.ecn)))
        return false;
    const uint32_t start = uint32_t(m->l2_len) + m->l3_len;
    uint32_t l4 = sizeof(rte_udp_hdr);
    if (tcp) {
        uint8_t buf[1];
        const uint8_t* data_offset = read_at(m, start + 12, 1, buf);
        l4 = data_offset != nullptr ? (*data_offset >> 4) * 4u : 0;
    }
    if (l4 < (tcp ? sizeof(rte_tcp_hdr) : sizeof(rte_udp_hdr)) || start + l4 > m->pkt_len || start + l4 > kMaxHeaders)
        return false;
    m->l4_len = l4;
    m->tso_segsz = h.gso_size;
    m->ol_flags |= tcp ? RTE_MBUF_F_TX_TCP_SEG : RTE_MBUF_F_TX_UDP_SEG;
    return true;
}

// The gso_type telling a guest that takes `caps` what `m` (asking for segmentation) is.
uint8_t gso_type_of(const rte_mbuf* m, OffloadCaps caps)
{
    if (m->ol_flags & RTE_MBUF_F_TX_UDP_SEG)
        return virtio::kGsoUdpL4;
    const uint8_t type = (m->ol_flags & RTE_MBUF_F_TX_IPV4) ? virtio::kGsoTcpv4 : virtio::kGsoTcpv6;
    // Never towards a guest without GUEST_ECN (needs_software() kept such frames away).
    return caps.ecn && tcp_cwr(m) ? uint8_t(type | virtio::kGsoEcn) : type;
}

}  // namespace

bool offload_from_header(const virtio::NetHeader& h, rte_mbuf* m, bool writable, OffloadCaps allowed)
{
    if (!(h.flags & virtio::kNetHdrNeedsCsum))
        return h.gso_type == virtio::kGsoNone;  // segmentation needs a partial checksum (§5.1.6.2)
    const uint32_t start = h.csum_start, offset = h.csum_offset;
    if (!allowed.csum || start + offset + 2 > m->pkt_len)
        return false;
    uint16_t type = 0;
    const uint32_t l2 = l2_length(m, type);
    const bool ip4 = type == RTE_ETHER_TYPE_IPV4, ip6 = type == RTE_ETHER_TYPE_IPV6;
    const bool tcp = offset == kTcpCsumOffset, udp = offset == kUdpCsumOffset;
    if (l2 == 0 || start <= l2 || start - l2 > 255 || !(ip4 || ip6) || !(tcp || udp)) {
        // Not expressible as an mbuf request: checksum it now (RFC 1071 from csum_start).
        return h.gso_type == virtio::kGsoNone && writable && finish_checksum(m, start, offset);
    }
    m->l2_len = l2;
    m->l3_len = start - l2;
    m->ol_flags |= (ip4 ? RTE_MBUF_F_TX_IPV4 : RTE_MBUF_F_TX_IPV6) | (tcp ? RTE_MBUF_F_TX_TCP_CKSUM : RTE_MBUF_F_TX_UDP_CKSUM);
    return h.gso_type == virtio::kGsoNone || segmentation_from_header(h, m, ip4, tcp, allowed);
}

virtio::NetHeader offload_header(const rte_mbuf* m, OffloadCaps caps)
{
    virtio::NetHeader h{};
    const uint64_t f = m->ol_flags;
    if ((f & kL4Mask) != 0 && caps.csum) {
        h.flags = virtio::kNetHdrNeedsCsum;
        h.csum_start = uint16_t(m->l2_len + m->l3_len);
        h.csum_offset = (f & kL4Mask) == RTE_MBUF_F_TX_UDP_CKSUM ? kUdpCsumOffset : kTcpCsumOffset;
        if (f & kSegmentation) {
            h.gso_type = gso_type_of(m, caps);
            h.gso_size = m->tso_segsz;
            h.hdr_len = uint16_t(m->l2_len + m->l3_len + m->l4_len);
        }
    } else if ((f & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_GOOD && caps.csum) {
        h.flags = virtio::kNetHdrDataValid;
    }
    return h;
}

bool needs_software(const rte_mbuf* m, OffloadCaps caps)
{
    const uint64_t f = m->ol_flags;
    const bool ip4 = (f & RTE_MBUF_F_TX_IPV4) != 0;
    if (f & RTE_MBUF_F_TX_UDP_SEG)
        return !(ip4 ? caps.uso4 : caps.uso6);
    if (f & RTE_MBUF_F_TX_TCP_SEG)  // CWR set: whole only to a destination that keeps it on the first segment
        return !(ip4 ? caps.tso4 : caps.tso6) || (!caps.ecn && tcp_cwr(m));
    return (f & kL4Mask) != 0 && !caps.csum;
}

uint16_t resolve_offloads(rte_mbuf** pkts, uint16_t n, OffloadCaps caps, rte_mempool* pool, PortCounters& counters,
                          rte_mbuf** out, uint16_t max)
{
    uint16_t got = 0;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        if (!needs_software(m, caps)) {
            if (got < max) {
                out[got++] = m;
                continue;
            }
            counters.drop(Drop::too_many_segments);
            rte_pktmbuf_free(m);
            continue;
        }
        Drop why = Drop::no_mbuf;
        if (m->ol_flags & kSegmentation) {
            const uint16_t made = segment(m, caps.csum, pool, out + got, uint16_t(max - got), why);
            if (made == 0)
                counters.drop(why);
            got = uint16_t(got + made);
            continue;
        }
        m = writable(m, pool);
        if (m != nullptr && checksum_in_software(m)) {
            if (got < max) {
                out[got++] = m;
                continue;
            }
            why = Drop::too_many_segments;
        } else if (m != nullptr) {
            why = Drop::bad_offload;
        }
        counters.drop(why);
        rte_pktmbuf_free(m);
    }
    return got;
}

}  // namespace vusw
