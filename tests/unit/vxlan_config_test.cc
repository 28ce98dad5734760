// --vxlan (control/vxlan_config.h): a tunnel's fields, its underlay NIC (no switch port of
// its own), its MTU (the underlay's less 50), its VNI map (vni=N:VID: a trunk of the mapped
// VLANs), and an error naming the field and what it takes for every kind of mistake.
#include "control/vxlan_config.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "tests/unit/config_args.h"

using namespace vusw;
using vusw::test::error_of;
using vusw::test::parse;

namespace {

constexpr const char* kNic = "net_af_packet0,iface=veth0";

bool mentions(const std::string& text, const char* what)
{
    CAPTURE(text);
    CAPTURE(what);
    return text.find(what) != std::string::npos;
}

}  // namespace

TEST_CASE("--vxlan: fields, the default UDP port, several remotes")
{
    auto s = parse_vxlan("vx42,local=10.99.0.1,remote=10.99.0.2,remote=10.99.0.3,vni=42,underlay=net_af_packet0");
    REQUIRE(s.has_value());
    CHECK(s->local_ip == 0x0a630001);
    CHECK(s->remotes == std::vector<uint32_t>{0x0a630002, 0x0a630003});
    CHECK(s->vni == 42);
    CHECK(s->dst_port == 4789);
    CHECK(s->underlay == "net_af_packet0");
    auto t = parse_vxlan("t,local=1.2.3.4,remote=5.6.7.8,vni=16777215,dstport=8472,underlay=u");
    REQUIRE(t.has_value());
    CHECK(t->vni == 16777215);
    CHECK(t->dst_port == 8472);
}

TEST_CASE("--vxlan: the underlay NIC is part of the tunnel, not a port; the tunnel's MTU is the underlay's less 50")
{
    auto r = parse({"--nic", kNic, "--vxlan", "vx42,local=10.99.0.1,remote=10.99.0.2,vni=42,underlay=net_af_packet0",
                    "--vhost-user", "/tmp/vm1.sock"});
    REQUIRE(r.has_value());
    CHECK(port_names(r->config) == std::vector<std::string>{"vx42", "vm1"});
    const auto specs = port_specs(r->config);
    REQUIRE(specs.size() == 2);
    CHECK(specs[0].first == PortKind::vxlan);
    CHECK(tunnel_port_config(specs[0].second, VxlanSettings{}, r->config.nics[0]).mtu == 1450);

    auto jumbo = parse({"--nic", "net_pcap0,iface=veth0|mtu=9000", "--vxlan",
                        "vx,local=10.0.0.1,remote=10.0.0.2,vni=1,underlay=net_pcap0|mtu=8000"});
    REQUIRE(jumbo.has_value());
    CHECK(tunnel_port_config(jumbo->config.vxlans[0], VxlanSettings{}, jumbo->config.nics[0]).mtu == 8000);
    // A NIC no tunnel names stays a port.
    auto other = parse({"--nic", kNic, "--nic", "net_null0", "--vxlan",
                        "vx,local=10.0.0.1,remote=10.0.0.2,vni=1,underlay=net_af_packet0"});
    REQUIRE(other.has_value());
    CHECK(port_names(other->config) == std::vector<std::string>{"net_null0", "vx"});
}

TEST_CASE("--vxlan: every mistake is an error naming what to give")
{
    const auto bad = [](const char* value) { return error_of({"--nic", kNic, "--vxlan", value}); };
    CHECK(mentions(bad("vx,remote=10.0.0.2,vni=1,underlay=net_af_packet0"), "local= is missing"));
    CHECK(mentions(bad("vx,local=10.0.0.1,vni=1,underlay=net_af_packet0"), "remote=IP"));
    CHECK(mentions(bad("vx,local=10.0.0.1,remote=10.0.0.2,underlay=net_af_packet0"), "vni= is missing"));
    CHECK(mentions(bad("vx,local=10.0.0.1,remote=10.0.0.2,vni=1"), "underlay= is missing"));
    CHECK(mentions(bad("vx,local=10.0.0.300,remote=10.0.0.2,vni=1,underlay=net_af_packet0"), "IPv4 address"));
    CHECK(mentions(bad("vx,local=fe80::1,remote=10.0.0.2,vni=1,underlay=net_af_packet0"), "IPv4 only"));
    CHECK(mentions(bad("vx,local=10.0.0.1,remote=10.0.0.2,vni=16777216,underlay=net_af_packet0"), "0..16777215"));
    CHECK(mentions(bad("vx,local=10.0.0.1,remote=10.0.0.2,vni=1,dstport=0,underlay=net_af_packet0"), "1..65535"));
    CHECK(mentions(bad("vx,local=10.0.0.1,remote=10.0.0.2,vni=1,vni=2,underlay=net_af_packet0"), "vni= given twice"));
    CHECK(mentions(bad("vx,local=10.0.0.1,remote=10.0.0.2,remote=10.0.0.2,vni=1,underlay=net_af_packet0"), "twice"));
    CHECK(mentions(bad("vx,local=10.0.0.1,remote=10.0.0.1,vni=1,underlay=net_af_packet0"), "local="));
    CHECK(mentions(bad("vx,local=10.0.0.1,remote=10.0.0.2,vni=1,ttl=3,underlay=net_af_packet0"), "unknown field `ttl`"));
    CHECK(mentions(bad("vx,local=10.0.0.1,remote=10.0.0.2,vni=1,underlay"), "not KEY=VALUE"));
    CHECK(mentions(bad("vx,local=10.0.0.1,remote=10.0.0.2,vni=1,underlay=eth9"), "names no --nic port"));
    CHECK(mentions(bad("vx,local=10.0.0.1,remote=10.0.0.2,vni=1,underlay=net_af_packet0|mtu=1451"),
                   "give mtu=1450 or less"));
    CHECK(mentions(error_of({"--nic", "net_af_packet0,iface=v|vlan=5", "--vxlan",
                             "vx,local=10.0.0.1,remote=10.0.0.2,vni=1,underlay=net_af_packet0"}),
                   "VLAN options"));
    CHECK(mentions(error_of({"--nic", kNic, "--vxlan", "a,local=10.0.0.1,remote=10.0.0.2,vni=1,underlay=net_af_packet0",
                             "--vxlan", "b,local=10.0.0.1,remote=10.0.0.3,vni=2,underlay=net_af_packet0"}),
                   "one tunnel per underlay"));
    CHECK(mentions(error_of({"--nic", kNic, "--vxlan", "net_af_packet0,local=10.0.0.1,remote=10.0.0.2,vni=1,underlay=net_af_packet0"}),
                   "two ports are named"));
}

TEST_CASE("--help documents --vxlan")
{
    auto help = parse({"--help"});
    REQUIRE(help.has_value());
    for (const char* text : {"--vxlan", "local=IP", "remote=IP", "vni=N", "vni=N:VID", "vxlan_no_vni", "underlay=NIC", "1450"})
        CHECK(mentions(help->print, text));
}

TEST_CASE("--vxlan vni=N:VID, repeated: a VNI map; the tunnel is a trunk of the mapped VLANs")
{
    auto s = parse_vxlan("vx,local=10.0.0.1,remote=10.0.0.2,vni=5000:10,vni=5001:20,underlay=u");
    REQUIRE(s.has_value());
    CHECK(s->vni_map == std::vector<VniVlan>{{5000, 10}, {5001, 20}});
    auto edges = parse_vxlan("vx,local=10.0.0.1,remote=10.0.0.2,vni=0:1,vni=16777215:4094,underlay=u");
    REQUIRE(edges.has_value());
    CHECK(edges->vni_map == std::vector<VniVlan>{{0, 1}, {16777215, 4094}});
    auto one = parse_vxlan("vx,local=10.0.0.1,remote=10.0.0.2,vni=7:30,underlay=u");
    REQUIRE(one.has_value());
    CHECK(one->vni_map == std::vector<VniVlan>{{7, 30}});

    auto r = parse({"--nic", kNic, "--vxlan", "vx,local=10.0.0.1,remote=10.0.0.2,vni=5000:10,vni=5001:20,underlay=net_af_packet0"});
    REQUIRE(r.has_value());
    const PortConfig p = tunnel_port_config(r->config.vxlans[0], *s, r->config.nics[0]);
    CHECK(p.vlan_mode == VlanMode::trunk);
    CHECK(p.vlan == 0);
    CHECK(p.trunks.to_string() == "10,20");
    CHECK(p.mtu == 1450);
    // One VNI keeps the port's own VLAN options.
    auto plain = parse({"--nic", kNic, "--vxlan", "vx,local=10.0.0.1,remote=10.0.0.2,vni=9,underlay=net_af_packet0|vlan=20"});
    REQUIRE(plain.has_value());
    const auto nine = parse_vxlan(plain->config.vxlans[0].target);
    REQUIRE(nine.has_value());
    CHECK(nine->vni_map.empty());
    CHECK(tunnel_port_config(plain->config.vxlans[0], *nine, plain->config.nics[0]).vlan == 20);
}

TEST_CASE("--vxlan vni=N:VID: every mistake is an error naming what to give")
{
    const auto bad = [](const std::string& vnis, const char* options = "") {
        const std::string value = "vx,local=10.0.0.1,remote=10.0.0.2," + vnis + ",underlay=net_af_packet0" + options;
        return error_of({"--nic", kNic, "--vxlan", value.c_str()});
    };
    CHECK(mentions(bad("vni=5000:10,vni=7"), "mixed with vni=N:VID"));
    CHECK(mentions(bad("vni=7,vni=5000:10"), "mixed with vni=N:VID"));
    CHECK(mentions(bad("vni=5000:10,vni=5000:20"), "VNI 5000 is mapped twice"));
    CHECK(mentions(bad("vni=5000:10,vni=5001:10"), "VLAN 10 is mapped twice"));
    CHECK(mentions(bad("vni=5000:0"), "VLAN id 1..4094"));
    CHECK(mentions(bad("vni=5000:4095"), "VLAN id 1..4094"));
    CHECK(mentions(bad("vni=16777216:10"), "0..16777215"));
    CHECK(mentions(bad("vni=5000:"), "expected VNI:VID"));
    CHECK(mentions(bad("vni=:10"), "expected VNI:VID"));
    CHECK(mentions(bad("vni=5000:10:3"), "expected VNI:VID"));
    CHECK(mentions(bad("vni=x"), "or VNI:VID"));
    for (const char* option : {"|vlan=10", "|vlan-mode=trunk", "|vlan-mode=trunk|trunks=10,20"})
        CHECK(mentions(bad("vni=5000:10,vni=5001:20", option), "drop its vlan=, vlan-mode= and trunks= options"));
}

TEST_CASE("--vxlan local=IP/PREFIX,gateway=IP: a routed underlay")
{
    auto s = parse_vxlan("vx,local=10.97.1.1/24,remote=10.97.1.2,remote=10.97.2.2,gateway=10.97.1.254,vni=42,underlay=u");
    REQUIRE(s.has_value());
    CHECK(s->local_ip == 0x0a610101);
    CHECK(s->prefix == 24);
    CHECK(s->gateway == 0x0a6101fe);
    // A prefix alone: every remote inside it; no prefix: no subnet, every remote on-link.
    auto subnet = parse_vxlan("vx,local=10.97.1.1/16,remote=10.97.2.2,vni=42,underlay=u");
    REQUIRE(subnet.has_value());
    CHECK(subnet->prefix == 16);
    CHECK(subnet->gateway == 0);
    auto flat = parse_vxlan("vx,local=10.97.1.1,remote=192.0.2.7,vni=42,underlay=u");
    REQUIRE(flat.has_value());
    CHECK(!flat->prefix.has_value());
    CHECK(parse_vxlan("vx,local=10.97.1.1/32,remote=10.97.2.2,gateway=10.97.1.254,vni=1,underlay=u").has_value() == false);
    CHECK(parse_vxlan("vx,local=10.97.1.1/0,remote=10.97.2.2,vni=1,underlay=u").has_value());
}

TEST_CASE("--vxlan gateway=: a bad prefix, a gateway outside the subnet, an off-link remote without one are errors")
{
    const auto bad = [](const char* value) {
        const auto s = parse_vxlan(value);
        return s ? std::string() : s.error().detail;
    };
    for (const char* prefix : {"/33", "/", "/x", "/-1", "/024x", "/24/8"})
        CHECK(mentions(bad(fmt::format("vx,local=10.97.1.1{},remote=10.97.1.2,vni=1,underlay=u", prefix).c_str()),
                       "prefix length 0..32"));
    CHECK(mentions(bad("vx,local=10.97.1.1/24,remote=10.97.2.2,vni=1,underlay=u"),
                   "remote=10.97.2.2 is outside local=10.97.1.1/24 and no gateway= is given"));
    CHECK(mentions(bad("vx,local=10.97.1.1/24,remote=10.97.2.2,gateway=10.97.2.1,vni=1,underlay=u"),
                   "gateway=10.97.2.1 is not another address in local=10.97.1.1/24"));
    CHECK(mentions(bad("vx,local=10.97.1.1/24,remote=10.97.2.2,gateway=10.97.1.1,vni=1,underlay=u"),
                   "is not another address"));
    CHECK(mentions(bad("vx,local=10.97.1.1,remote=10.97.2.2,gateway=10.97.1.254,vni=1,underlay=u"),
                   "gateway=10.97.1.254 needs local= with a prefix length"));
    CHECK(mentions(bad("vx,local=10.97.1.1/24,remote=10.97.2.2,gateway=10.97.1.254,gateway=10.97.1.253,vni=1,underlay=u"),
                   "gateway= given twice"));
    CHECK(mentions(bad("vx,local=10.97.1.1/24,remote=10.97.2.2,gateway=nowhere,vni=1,underlay=u"), "IPv4 address"));
}

TEST_CASE("--help documents local=IP/PREFIX and gateway=")
{
    auto help = parse({"--help"});
    REQUIRE(help.has_value());
    for (const char* text : {"local=IP[/PREFIX]", "gateway=IP"})
        CHECK(mentions(help->print, text));
}
