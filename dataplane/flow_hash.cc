// Flow hash for spreading frames over a guest's RX queues.
#include "vusw/flow_hash.h"

#include <rte_hash_crc.h>
#include <rte_mbuf.h>

#include <cstring>

namespace vusw {
namespace {

constexpr uint16_t kEtherIpv4 = 0x0800, kEtherIpv6 = 0x86dd, kEtherVlan = 0x8100, kEtherQinQ = 0x88a8;
constexpr uint8_t kProtoTcp = 6, kProtoUdp = 17;
constexpr uint32_t kSeed = 0x9e3779b9;

uint16_t load_be16(const std::byte* p)
{
    return uint16_t(uint16_t(p[0]) << 8 | uint16_t(p[1]));
}

template <class T>
T load(const std::byte* p)
{
    T v;
    std::memcpy(&v, p, sizeof(v));
    return v;
}

// rte_hash_crc() without its casts to wider types: frame fields are rarely aligned
// (an IP header starts 14 bytes into the frame), and UBSan rightly flags those loads.
uint32_t crc(std::span<const std::byte> bytes, uint32_t seed)
{
    const std::byte* p = bytes.data();
    std::size_t n = bytes.size();
    for (; n >= 8; n -= 8, p += 8)
        seed = rte_hash_crc_8byte(load<uint64_t>(p), seed);
    if (n & 4) {
        seed = rte_hash_crc_4byte(load<uint32_t>(p), seed);
        p += 4;
    }
    if (n & 2) {
        seed = rte_hash_crc_2byte(load<uint16_t>(p), seed);
        p += 2;
    }
    if (n & 1)
        seed = rte_hash_crc_1byte(uint8_t(*p), seed);
    return seed;
}

// Addresses (and ports when `l4` is non-empty) of an IP packet.
uint32_t hash_ip(std::span<const std::byte> addresses, std::span<const std::byte> l4, uint8_t proto)
{
    uint32_t h = crc(addresses, kSeed ^ proto);
    if ((proto == kProtoTcp || proto == kProtoUdp) && l4.size() >= 4)
        h = crc(l4.first(4), h);
    return h;
}

}  // namespace

uint32_t flow_hash(std::span<const std::byte> frame)
{
    if (frame.size() < 14)
        return crc(frame, kSeed);
    std::size_t off = 12;
    uint16_t type = load_be16(&frame[off]);
    while ((type == kEtherVlan || type == kEtherQinQ) && off + 6 <= frame.size()) {
        off += 4;
        type = load_be16(&frame[off]);
    }
    off += 2;
    const std::span<const std::byte> l3 = frame.subspan(off);
    if (type == kEtherIpv4 && l3.size() >= 20) {
        const std::size_t ihl = std::size_t(uint8_t(l3[0]) & 0x0f) * 4;
        const bool fragment = (load_be16(&l3[6]) & 0x3fff) != 0;  // more fragments, or an offset
        const std::span<const std::byte> l4 = fragment || ihl < 20 || ihl > l3.size() ? std::span<const std::byte>{}
                                                                                        : l3.subspan(ihl);
        return hash_ip(l3.subspan(12, 8), l4, uint8_t(l3[9]));
    }
    if (type == kEtherIpv6 && l3.size() >= 40)
        return hash_ip(l3.subspan(8, 32), l3.subspan(40), uint8_t(l3[6]));  // ports only with no extension header
    return crc(frame.first(14), kSeed);
}

uint32_t flow_hash(const rte_mbuf* m)
{
    if (m->ol_flags & RTE_MBUF_F_RX_RSS_HASH)
        return m->hash.rss;
    return flow_hash(std::span(rte_pktmbuf_mtod(m, const std::byte*), m->data_len));
}

}  // namespace vusw
