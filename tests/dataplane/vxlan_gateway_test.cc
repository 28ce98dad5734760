// A tunnel over a routed underlay (local=10.97.1.1/24,gateway=10.97.1.254; ports/vxlan_port.h)
// on real mbufs over a net_ring underlay: it ARPs for the on-link remote and the gateway,
// never for the off-link remotes; frames to an off-link remote go to the gateway's MAC
// with the remote's IP, once the gateway answered (one answer serves every off-link
// remote); frames from an off-link remote, with the gateway's source MAC, are
// decapsulated and teach where its inner MACs are.
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include <algorithm>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "ports/ethdev_port.h"
#include "ports/vxlan_port.h"
#include "vxlan_frames.h"

using namespace vusw;
using test::inner_frame;
using test::mbuf_of;

namespace {

constexpr uint32_t kLocalIp = 0x0a610101;  // 10.97.1.1/24
constexpr uint32_t kNear = 0x0a610102, kFar = 0x0a610202, kFar2 = 0x0a610302, kGateway = 0x0a6101fe;
const MacAddr kNearMac{0x02, 0, 0, 0, 0x01, 0x02}, kGatewayMac{0x02, 0, 0, 0, 0x01, 0xfe};
const MacAddr kInnerX{0x02, 0, 0, 0, 0, 0x58};  // a host behind kFar
const MacAddr kGuest{0x02, 0, 0, 0, 0, 0x47};

rte_mempool* pool()
{
    static rte_mempool* p = test::make_pool("gateway_test", 512);
    return p;
}

struct Rig {
    rte_ring* wire = nullptr;  // the underlay's ring: its transmit and its receive
    std::unique_ptr<VxlanPort> tunnel;
    PmdContext ctx{0, pool()};

    // Remotes kNear (on-link), kFar and kFar2 (behind the gateway) over net_ring device `dev`.
    explicit Rig(const std::string& dev)
    {
        test::RingUnderlay underlay = test::ring_underlay(dev, pool());
        wire = underlay.wire;
        VxlanSettings s;
        s.local_ip = kLocalIp;
        s.prefix = 24;
        s.gateway = kGateway;
        s.remotes = {kNear, kFar, kFar2};
        s.vni = 42;
        auto t = VxlanPort::open("vx", s, std::move(underlay.port));
        REQUIRE(t.has_value());
        tunnel = std::move(*t);
        tunnel->set_config(PortConfig{});
        tunnel->set_owner(0, 0);
    }
    ~Rig() { test::take_wire(wire); }

    // `m` arrives on the underlay; the tunnel polls it once. The frames it keeps, as bytes.
    std::vector<test::Bytes> arrive(rte_mbuf* m)
    {
        if (m != nullptr)
            REQUIRE(rte_ring_enqueue(wire, m) == 0);
        std::array<rte_mbuf*, kBurst> pkts;
        const uint16_t n = tunnel->receive(ctx, 0, pkts.data(), kBurst);
        std::vector<test::Bytes> out;
        for (uint16_t i = 0; i < n; ++i) {
            out.push_back(test::bytes_of(pkts[i]));
            rte_pktmbuf_free(pkts[i]);
        }
        return out;
    }
    rte_mbuf* arp_reply(uint32_t ip, const MacAddr& mac)
    {
        return test::arp_reply_frame(pool(), ip, mac, kLocalIp, tunnel->local_mac());
    }
    // The switch sends `f` to the tunnel.
    void send(const test::Bytes& f)
    {
        rte_mbuf* m = mbuf_of(pool(), f);
        tunnel->transmit(ctx, 0, &m, 1);
    }
    uint64_t drops(Drop why) const { return tunnel->totals().drops[std::size_t(why)]; }
};

struct NoLeak {
    unsigned before = rte_mempool_in_use_count(pool());
    ~NoLeak() { CHECK(rte_mempool_in_use_count(pool()) == before); }
};

std::vector<uint32_t> arp_targets(const test::Wire& w)
{
    std::vector<uint32_t> ips;
    for (const ArpPacket& a : w.arp)
        ips.push_back(a.target_ip);
    std::sort(ips.begin(), ips.end());
    return ips;
}

}  // namespace

TEST_CASE("routed underlay: ARP for the on-link remote and the gateway only; off-link frames go to the gateway's MAC")
{
    NoLeak leak;
    {
        Rig rig("net_ring_gw0");
        CHECK(rig.tunnel->next_hop(0) == kNear);
        CHECK(rig.tunnel->next_hop(1) == kGateway);
        CHECK(rig.tunnel->next_hop(2) == kGateway);
        // The first frame finds every next hop unknown: dropped, and each asked for. (Not
        // polled first: the tunnel would read its own requests back from the ring.)
        const test::Bytes hello = inner_frame(kBroadcastMac, kGuest);
        rig.send(hello);
        test::Wire w = test::take_wire(rig.wire);
        CHECK(arp_targets(w) == std::vector<uint32_t>{kNear, kGateway});
        CHECK(w.vxlan.empty());
        CHECK(rig.drops(Drop::no_neighbour) == 3);

        // The gateway answers: both off-link remotes are resolved, the on-link one is not.
        CHECK(rig.arrive(rig.arp_reply(kGateway, kGatewayMac)).empty());
        CHECK_FALSE(rig.tunnel->neighbour(0).has_value());
        CHECK(rig.tunnel->neighbour(1) == kGatewayMac);
        CHECK(rig.tunnel->neighbour(2) == kGatewayMac);
        CHECK(rig.tunnel->vxlan_totals().neighbours_learned == 1);

        rig.send(hello);  // to every remote: the on-link one is still unknown
        w = test::take_wire(rig.wire);
        REQUIRE(w.vxlan.size() == 2);
        for (const test::SentVxlan& s : w.vxlan) {
            CHECK(s.dst_mac == kGatewayMac);
            CHECK(s.vni == 42);
            CHECK(s.inner == hello);
        }
        CHECK(std::vector<uint32_t>{w.vxlan[0].remote, w.vxlan[1].remote} == std::vector<uint32_t>{kFar, kFar2});
        CHECK(rig.drops(Drop::no_neighbour) == 4);
        for (const ArpPacket& a : w.arp)  // asked again (at most once a second): never for a remote behind the gateway
            CHECK(a.target_ip == kNear);

        CHECK(rig.arrive(rig.arp_reply(kNear, kNearMac)).empty());
        rig.send(hello);
        w = test::take_wire(rig.wire);
        REQUIRE(w.vxlan.size() == 3);
        CHECK(w.vxlan[0].remote == kNear);
        CHECK(w.vxlan[0].dst_mac == kNearMac);
        CHECK(w.arp.empty());
    }
}

TEST_CASE("routed underlay: frames from an off-link remote arrive with the gateway's MAC and are decapsulated")
{
    NoLeak leak;
    {
        Rig rig("net_ring_gw1");
        rig.arrive(rig.arp_reply(kGateway, kGatewayMac));
        test::take_wire(rig.wire);
        const test::Bytes hello = inner_frame(kBroadcastMac, kInnerX);
        const VxlanOuter from_far{kGatewayMac, rig.tunnel->local_mac(), kFar, kLocalIp, kVxlanDefaultPort, 42};
        CHECK(rig.arrive(test::vxlan_frame(pool(), from_far, hello)) == std::vector<test::Bytes>{hello});
        const VxlanTotals t = rig.tunnel->vxlan_totals();
        CHECK(t.decapsulated[1] == 1);
        CHECK(t.decapsulated[2] == 0);
        CHECK(rig.tunnel->inner_macs_by_remote()[1] == 1);

        // X is behind kFar: a frame to X goes to kFar alone, through the gateway.
        rig.send(inner_frame(kInnerX, kGuest));
        const test::Wire w = test::take_wire(rig.wire);
        REQUIRE(w.vxlan.size() == 1);
        CHECK(w.vxlan[0].remote == kFar);
        CHECK(w.vxlan[0].dst_mac == kGatewayMac);
    }
}
