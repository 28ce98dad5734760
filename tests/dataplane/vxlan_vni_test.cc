// A tunnel with a VNI map (vni=5000:10,vni=5001:20; ports/vxlan_port.h) on real mbufs, over
// a net_ring underlay (what the tunnel sends lands in the ring, what the test puts there it
// receives) and through the L2 switch between two access guests of VLAN 10 and 20:
// frames of VLAN 10 and 20 leave untagged in VNI 5000 and 5001; a frame of a VLAN without
// a VNI is dropped as vxlan_no_vni; VNI 5001 reaches only the VLAN-20 guest; an unmapped
// VNI (vxlan_unknown_vni) and a tagged inner frame (vlan_tagged_on_access) are dropped;
// inner MACs are learned per VLAN; the per-VNI counters count; nothing leaks.
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include <cstring>
#include <vector>

#include <doctest/doctest.h>

#include <fmt/format.h>

#include "ports/ethdev_port.h"
#include "ports/vxlan_port.h"
#include "vusw/l2switch.h"
#include "vusw/rcu.h"
#include "vxlan_frames.h"

using namespace vusw;
using test::bytes_of;
using test::inner_frame;
using test::mbuf_of;

namespace {

using Bytes = std::vector<uint8_t>;

constexpr uint32_t kLocalIp = 0x0a630001, kRemoteA = 0x0a630002, kRemoteB = 0x0a630003;
const MacAddr kMacA{0x02, 0, 0, 0, 0xa, 0xa}, kMacB{0x02, 0, 0, 0, 0xb, 0xb};
const MacAddr kInnerX{0x02, 0, 0, 0, 0, 0x58};  // a host behind remote A
const MacAddr kGuest{0x02, 0, 0, 0, 0, 0x47};

rte_mempool* pool()
{
    static rte_mempool* p = test::make_pool("vni_test", 1024);
    return p;
}

// Remote `ip` (MAC `mac`) sends `f` to us in VNI `vni`.
rte_mbuf* from_remote(uint32_t ip, const MacAddr& mac, const MacAddr& our_mac, uint32_t vni, const Bytes& f)
{
    return test::vxlan_frame(pool(), VxlanOuter{mac, our_mac, ip, kLocalIp, kVxlanDefaultPort, vni}, f);
}

rte_mbuf* arp_reply(uint32_t ip, const MacAddr& mac, const MacAddr& our_mac)
{
    return test::arp_reply_frame(pool(), ip, mac, kLocalIp, our_mac);
}

// A guest port: keeps what the switch sends it.
class Guest final : public Port {
public:
    Guest(std::string name, uint16_t vlan) : Port(std::move(name), "test", 1)
    {
        PortConfig c;
        c.vlan = vlan;
        set_config(c);
        REQUIRE(prepare_queue(0).has_value());
        set_owner(0, 0);
    }
    ~Guest() override { take(); }
    uint16_t receive(PmdContext&, uint16_t, rte_mbuf**, uint16_t) override { return 0; }
    void transmit(PmdContext&, uint16_t, rte_mbuf** pkts, uint16_t n) override { got.insert(got.end(), pkts, pkts + n); }
    std::string state() const override { return "test"; }
    // The frames received since the last call, as bytes.
    std::vector<Bytes> take()
    {
        std::vector<Bytes> out;
        for (rte_mbuf* m : got) {
            out.push_back(bytes_of(m));
            rte_pktmbuf_free(m);
        }
        got.clear();
        return out;
    }
    std::vector<rte_mbuf*> got;
};

using Sent = test::SentVxlan;

struct Rig {
    Reclaimer reclaimer{1};
    Fdb fdb{1024};
    L2Switch sw{fdb, reclaimer};
    rte_ring* wire = nullptr;  // the underlay's ring: its transmit and its receive
    std::unique_ptr<VxlanPort> tunnel;
    Guest ten{"g10", 10}, twenty{"g20", 20};
    PmdContext ctx{0, pool()};

    // Over a new net_ring device `dev` (test::ring_underlay).
    explicit Rig(const std::string& dev)
    {
        test::RingUnderlay underlay = test::ring_underlay(dev, pool());
        wire = underlay.wire;
        VxlanSettings s;
        s.local_ip = kLocalIp;
        s.remotes = {kRemoteA, kRemoteB};
        s.vni_map = {{5000, 10}, {5001, 20}};
        auto t = VxlanPort::open("vx", s, std::move(underlay.port));
        REQUIRE(t.has_value());
        tunnel = std::move(*t);
        PortConfig trunk;  // as tunnel_port_config makes it
        trunk.vlan_mode = VlanMode::trunk;
        trunk.trunks = VlanSet{};
        trunk.trunks.add(10);
        trunk.trunks.add(20);
        tunnel->set_config(trunk);
        tunnel->set_owner(0, 0);
        for (Port* p : std::initializer_list<Port*>{tunnel.get(), &ten, &twenty})
            REQUIRE(sw.add_port(*p).has_value());
        // Both remotes answer: their MACs are known, frames go out.
        rte_mbuf* replies[] = {arp_reply(kRemoteA, kMacA, tunnel->local_mac()), arp_reply(kRemoteB, kMacB, tunnel->local_mac())};
        REQUIRE(rte_ring_enqueue_bulk(wire, reinterpret_cast<void**>(replies), 2, nullptr) == 2);
        drain();
        REQUIRE(tunnel->neighbour(0) == kMacA);
        REQUIRE(tunnel->neighbour(1) == kMacB);
        sent();  // the ARP requests of the start
    }
    ~Rig()
    {
        sent();
        tunnel.reset();
        reclaimer.drain(std::chrono::milliseconds(1000));
    }

    // The tunnel polls its underlay once; the frames it keeps are switched.
    uint16_t drain()
    {
        std::array<rte_mbuf*, kBurst> pkts;
        const uint16_t n = tunnel->receive(ctx, 0, pkts.data(), kBurst);
        sw.forward(ctx, *tunnel, pkts.data(), n);
        return n;
    }
    // A guest sends `f` into the switch.
    void from_guest(Guest& g, const Bytes& f)
    {
        rte_mbuf* m = mbuf_of(pool(), f);
        sw.forward(ctx, g, &m, 1);
    }
    // What the tunnel sent since the last call (ARP left out).
    std::vector<Sent> sent() { return test::take_wire(wire).vxlan; }
    uint64_t drops(Drop why) const { return tunnel->totals().drops[std::size_t(why)]; }
};

struct NoLeak {
    unsigned before = rte_mempool_in_use_count(pool());
    ~NoLeak() { CHECK(rte_mempool_in_use_count(pool()) == before); }
};

}  // namespace

TEST_CASE("VNI map: frames of VLAN 10 and 20 leave untagged in VNI 5000 and 5001; other VLANs are vxlan_no_vni drops")
{
    NoLeak leak;
    Rig rig("net_ring_vni0");
    const Bytes b10 = inner_frame(kBroadcastMac, kGuest), b20 = inner_frame(kBroadcastMac, kGuest, -1, 300);
    rig.from_guest(rig.ten, b10);
    std::vector<Sent> out = rig.sent();
    REQUIRE(out.size() == 2);  // to both remotes
    for (const Sent& s : out) {
        CHECK(s.vni == 5000);
        CHECK(s.inner == b10);  // untagged on the wire
    }
    CHECK(out[0].remote != out[1].remote);
    CHECK(rig.twenty.take().empty());  // another VLAN

    rig.from_guest(rig.twenty, b20);
    out = rig.sent();
    REQUIRE(out.size() == 2);
    CHECK(out[0].vni == 5001);
    CHECK(out[1].vni == 5001);
    CHECK(out[0].inner == b20);

    // Straight to the tunnel (a trunk's forms): tagged 20 leaves in 5001; a frame of the
    // native VLAN 0 (untagged) or of an unmapped VLAN has no VNI.
    rte_mbuf* frames[] = {mbuf_of(pool(), inner_frame(kBroadcastMac, kGuest, 20)), mbuf_of(pool(), inner_frame(kBroadcastMac, kGuest)),
                          mbuf_of(pool(), inner_frame(kBroadcastMac, kGuest, 30))};
    rte_mbuf* shared = frames[0];
    rte_pktmbuf_refcnt_update(shared, 1);  // as a flood shares it with another port: not written
    rig.tunnel->transmit(rig.ctx, 0, frames, 3);
    out = rig.sent();
    REQUIRE(out.size() == 2);
    CHECK(out[0].vni == 5001);
    CHECK(out[1].vni == 5001);
    CHECK(out[0].inner == b10);
    CHECK(bytes_of(shared) == inner_frame(kBroadcastMac, kGuest, 20));
    rte_pktmbuf_free(shared);
    CHECK(rig.drops(Drop::vxlan_no_vni) == 2);

    const VxlanTotals t = rig.tunnel->vxlan_totals();
    CHECK(t.vni_encapsulated == std::vector<uint64_t>{2, 4});  // one per remote
    CHECK(t.vni_decapsulated == std::vector<uint64_t>{0, 0});
    CHECK(rig.tunnel->vnis() == std::vector<VniVlan>{{5000, 10}, {5001, 20}});
}

TEST_CASE("VNI map: VNI 5001 reaches only the VLAN-20 guest; unmapped VNIs and tagged inner frames are dropped")
{
    NoLeak leak;
    Rig rig("net_ring_vni1");
    const Bytes hello = inner_frame(kBroadcastMac, kInnerX);
    const MacAddr mac = rig.tunnel->local_mac();
    rte_mbuf* in[] = {from_remote(kRemoteA, kMacA, mac, 5001, hello), from_remote(kRemoteA, kMacA, mac, 5002, hello),
                      from_remote(kRemoteA, kMacA, mac, 5000, inner_frame(kBroadcastMac, kInnerX, 20))};
    REQUIRE(rte_ring_enqueue_bulk(rig.wire, reinterpret_cast<void**>(in), 3, nullptr) == 3);
    CHECK(rig.drain() == 1);
    CHECK(rig.ten.take().empty());
    CHECK(rig.twenty.take() == std::vector<Bytes>{hello});  // untagged to the access guest
    CHECK(rig.drops(Drop::vxlan_unknown_vni) == 1);
    CHECK(rig.drops(Drop::vlan_tagged_on_access) == 1);
    CHECK(rig.tunnel->vxlan_totals().vni_decapsulated == std::vector<uint64_t>{0, 1});

    // X is behind remote A in VLAN 20 only: to X in VLAN 20 goes to A alone, in VLAN 10
    // X is unknown and goes to both.
    rig.from_guest(rig.twenty, inner_frame(kInnerX, kGuest));
    std::vector<Sent> out = rig.sent();
    REQUIRE(out.size() == 1);
    CHECK(out[0].remote == kRemoteA);
    CHECK(out[0].vni == 5001);
    rig.from_guest(rig.ten, inner_frame(kInnerX, kGuest));
    out = rig.sent();
    REQUIRE(out.size() == 2);
    CHECK(out[0].vni == 5000);
}
