// Flow hash: frames of one flow agree, different flows spread, fragments stay together,
// VLAN tags and truncated headers are handled.
#include "vusw/flow_hash.h"

#include <array>
#include <cstring>
#include <set>
#include <vector>

#include <doctest/doctest.h>

using namespace vusw;

namespace {

// Ethernet + optional 802.1Q tag + IPv4 + UDP header, then `payload` bytes of `fill`.
std::vector<std::byte> udp4(uint32_t src_ip, uint16_t sport, uint16_t dport, std::size_t payload = 18,
                            uint8_t fill = 0, int vlan = -1, uint16_t frag = 0)
{
    std::vector<uint8_t> f = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1};  // dst, src MAC
    if (vlan >= 0)
        f.insert(f.end(), {0x81, 0x00, uint8_t(vlan >> 8), uint8_t(vlan)});
    f.insert(f.end(), {0x08, 0x00});
    const std::array<uint8_t, 20> ip = {0x45, 0, 0, 0, 0, 0, uint8_t(frag >> 8), uint8_t(frag), 64, 17, 0, 0,
                                        uint8_t(src_ip >> 24), uint8_t(src_ip >> 16), uint8_t(src_ip >> 8),
                                        uint8_t(src_ip), 10, 0, 0, 2};
    f.insert(f.end(), ip.begin(), ip.end());
    f.insert(f.end(), {uint8_t(sport >> 8), uint8_t(sport), uint8_t(dport >> 8), uint8_t(dport), 0, 0, 0, 0});
    f.insert(f.end(), payload, fill);
    std::vector<std::byte> out(f.size());
    std::memcpy(out.data(), f.data(), f.size());
    return out;
}

uint32_t hash(const std::vector<std::byte>& f)
{
    return flow_hash(std::span<const std::byte>(f));
}

}  // namespace

TEST_CASE("one flow, one hash: payload and length do not matter")
{
    CHECK(hash(udp4(0x0a000001, 1000, 2000, 18, 0)) == hash(udp4(0x0a000001, 1000, 2000, 1400, 0xab)));
}

TEST_CASE("addresses and ports each change the hash, and flows spread over queues")
{
    CHECK(hash(udp4(0x0a000001, 1000, 2000)) != hash(udp4(0x0a000002, 1000, 2000)));
    CHECK(hash(udp4(0x0a000001, 1000, 2000)) != hash(udp4(0x0a000001, 1001, 2000)));
    CHECK(hash(udp4(0x0a000001, 1000, 2000)) != hash(udp4(0x0a000001, 1000, 2001)));
    // 256 flows over 4 queues the way the vhost port picks them: every queue gets some,
    // none gets more than twice its share.
    std::array<int, 4> per_queue{};
    for (uint16_t port = 0; port < 256; ++port)
        ++per_queue[(uint64_t(hash(udp4(0x0a000001, uint16_t(10000 + port), 4789))) * 4) >> 32];
    for (int n : per_queue) {
        CHECK(n > 0);
        CHECK(n < 128);
    }
}

TEST_CASE("fragments of one datagram hash alike: ports are not used for them")
{
    const uint16_t more_fragments = 0x2000, offset_185 = 185;
    CHECK(hash(udp4(0x0a000001, 1000, 2000, 18, 0, -1, more_fragments)) ==
          hash(udp4(0x0a000001, 0, 0, 18, 0, -1, offset_185)));
}

TEST_CASE("a VLAN tag is skipped; short and non-IP frames hash without reading past their end")
{
    CHECK(hash(udp4(0x0a000001, 1000, 2000, 18, 0, 10)) == hash(udp4(0x0a000001, 1000, 2000, 18, 0, 20)));
    std::vector<std::byte> arp = udp4(0x0a000001, 1000, 2000);
    arp[12] = std::byte{0x08}, arp[13] = std::byte{0x06};
    CHECK(hash(arp) == flow_hash(std::span<const std::byte>(arp).first(14)));
    for (std::size_t len = 0; len <= 42; ++len) {  // every truncation of an IPv4/UDP header
        const std::vector<std::byte> f = udp4(0x0a000001, 1000, 2000);
        std::vector<std::byte> cut(f.begin(), f.begin() + std::ptrdiff_t(len));  // its own allocation: ASan sees overreads
        (void)hash(cut);
    }
}
