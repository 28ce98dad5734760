// VLAN rules: classification of received frames, egress forms, header rewriting.
#include "vusw/vlan.h"

#include <array>
#include <cstring>
#include <vector>

#include <doctest/doctest.h>

using namespace vusw;

namespace {

PortConfig access(uint16_t vlan)
{
    PortConfig p;
    p.vlan = vlan;
    return p;
}

PortConfig trunk(std::initializer_list<uint16_t> vlans, uint16_t native = 0)
{
    PortConfig p;
    p.vlan_mode = VlanMode::trunk;
    p.vlan = native;
    if (vlans.size() > 0) {
        p.trunks = VlanSet{};
        for (uint16_t v : vlans)
            p.trunks.add(v);
    }
    return p;
}

std::vector<unsigned char> bytes(std::initializer_list<unsigned> b)
{
    return std::vector<unsigned char>(b.begin(), b.end());
}

}  // namespace

TEST_CASE("access ports: untagged frames belong to the port's VLAN, tagged ones are dropped")
{
    CHECK(ingress_vlan(access(0), std::nullopt) == 0);
    CHECK(ingress_vlan(access(10), std::nullopt) == 10);
    for (uint16_t tci : {0x000a, 0x0000, 0xe00a, 0x0fff}) {  // even priority-only tags (VID 0)
        CAPTURE(tci);
        CHECK(ingress_vlan(access(10), tci) == std::unexpected(Drop::vlan_tagged_on_access));
        CHECK(ingress_vlan(access(0), tci) == std::unexpected(Drop::vlan_tagged_on_access));
    }
}

TEST_CASE("trunks: tagged frames by VID if carried, untagged and priority-tagged to the native VLAN")
{
    const PortConfig t = trunk({10, 20});
    CHECK(ingress_vlan(t, 10) == 10);
    CHECK(ingress_vlan(t, 0xa014) == 20);  // PCP 5 is not part of the VID
    CHECK(ingress_vlan(t, std::nullopt) == 0);
    CHECK(ingress_vlan(t, 0x6000) == 0);  // priority tag only
    CHECK(ingress_vlan(t, 30) == std::unexpected(Drop::vlan_not_allowed));
    CHECK(ingress_vlan(t, 0x0fff) == std::unexpected(Drop::vlan_not_allowed));  // VID 4095 is reserved
    CHECK(ingress_vlan(trunk({}), 4094) == 4094);                               // default: all VLANs
    CHECK(ingress_vlan(trunk({}), 0x0fff) == std::unexpected(Drop::vlan_not_allowed));

    const PortConfig native = trunk({10}, 7);
    CHECK(ingress_vlan(native, std::nullopt) == 7);
    CHECK(ingress_vlan(native, 0) == 7);
    CHECK(ingress_vlan(native, 7) == 7);  // the native VLAN tagged is accepted too
    CHECK(ingress_vlan(native, 10) == 10);
    CHECK(ingress_vlan(native, 11) == std::unexpected(Drop::vlan_not_allowed));
}

TEST_CASE("which ports carry a VLAN")
{
    CHECK(access(0).carries(0));
    CHECK_FALSE(access(0).carries(10));
    CHECK(access(10).carries(10));
    CHECK_FALSE(access(10).carries(0));
    const PortConfig t = trunk({10, 20}, 0);
    CHECK(t.carries(0));
    CHECK(t.carries(10));
    CHECK(t.carries(20));
    CHECK_FALSE(t.carries(30));
    CHECK(trunk({10}, 5).carries(5));
    CHECK_FALSE(trunk({10}, 5).carries(0));
}

TEST_CASE("egress: untagged from access ports and a trunk's native VLAN, tagged otherwise")
{
    CHECK_FALSE(egress_tagged(access(10), 10));
    CHECK(egress_tagged(trunk({10}), 10));
    CHECK_FALSE(egress_tagged(trunk({10}), 0));
    CHECK_FALSE(egress_tagged(trunk({10}, 10), 10));
    CHECK(egress_tci(0xa014, 10) == 0xa00a);  // priority kept, VID replaced
    CHECK(egress_tci(0, 4094) == 4094);

    const FrameVlan untagged10{10, 0, false};
    const FrameVlan tagged10{10, 0x200a, true};
    const FrameVlan prio_tagged0{0, 0x2000, true};
    const FrameVlan stripped10{10, 0x000a, false};  // a NIC moved the tag into the mbuf
    CHECK(egress_form(access(10), untagged10) == EgressForm::as_is);
    CHECK(egress_form(access(10), tagged10) == EgressForm::untagged);
    CHECK(egress_form(access(10), stripped10) == EgressForm::as_is);
    CHECK(egress_form(trunk({10}), untagged10) == EgressForm::tagged);
    CHECK(egress_form(trunk({10}), tagged10) == EgressForm::as_is);
    CHECK(egress_form(trunk({10}), stripped10) == EgressForm::tagged);
    CHECK(egress_form(trunk({10}, 10), tagged10) == EgressForm::untagged);
    CHECK(egress_form(access(0), prio_tagged0) == EgressForm::untagged);
    CHECK(egress_form(trunk({}, 0), prio_tagged0) == EgressForm::untagged);  // native: untagged
    // A priority-tagged frame of native VLAN 5 leaves another trunk tagged with VID 5.
    CHECK(egress_form(trunk({}, 0), FrameVlan{5, 0x2000, true}) == EgressForm::tagged);
}

TEST_CASE("a plain switch: only access ports of VLAN 0")
{
    CHECK(PortConfig{}.vlan_plain());
    CHECK_FALSE(access(1).vlan_plain());
    CHECK_FALSE(trunk({}).vlan_plain());
    PortConfig jumbo;
    jumbo.mtu = 9000;
    CHECK(jumbo.vlan_plain());  // the MTU is no VLAN work
}

TEST_CASE("tag, strip and retag headers in place")
{
    // dst 02:..:0b, src 02:..:0a, ethertype 0x88b5, payload 1 2
    const auto untagged = bytes({2, 0, 0, 0, 0, 0xb, 2, 0, 0, 0, 0, 0xa, 0x88, 0xb5, 1, 2});
    const auto tagged = bytes({2, 0, 0, 0, 0, 0xb, 2, 0, 0, 0, 0, 0xa, 0x81, 0x00, 0xa0, 0x0a, 0x88, 0xb5, 1, 2});

    std::vector<unsigned char> buf(4 + untagged.size());
    std::memcpy(buf.data() + 4, untagged.data(), untagged.size());
    write_tag_before(buf.data() + 4, 0xa00a);
    CHECK(buf == tagged);

    strip_tag_in_place(buf.data());
    CHECK(std::vector<unsigned char>(buf.begin() + 4, buf.end()) == untagged);

    std::vector<unsigned char> retag = tagged;
    set_tci(retag.data(), 0x0014);
    CHECK(retag == bytes({2, 0, 0, 0, 0, 0xb, 2, 0, 0, 0, 0, 0xa, 0x81, 0x00, 0x00, 0x14, 0x88, 0xb5, 1, 2}));
}
