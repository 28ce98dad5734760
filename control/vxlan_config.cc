// Parsing and checking --vxlan.
#include "control/vxlan_config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <set>
#include <sstream>

#include <fmt/format.h>

namespace vusw {
namespace {

constexpr const char* kForm =
    "expected NAME,local=IP[/PREFIX],remote=IP[,remote=IP...][,gateway=IP],vni=N|vni=N:VID[,vni=N:VID...]"
    "[,dstport=PORT],underlay=NIC";

std::optional<uint32_t> ipv4(const std::string& text)
{
    in_addr a{};
    if (inet_pton(AF_INET, text.c_str(), &a) != 1)
        return std::nullopt;
    return ntohl(a.s_addr);
}

std::optional<uint32_t> number(const std::string& text, uint32_t lo, uint32_t hi)
{
    if (text.empty() || text.size() > 8 || text.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
    const uint32_t v = uint32_t(std::stoul(text));
    return v >= lo && v <= hi ? std::optional(v) : std::nullopt;
}

// A pair of vni=N:VID into the map; an error text if it is not one or repeats a VNI or VLAN.
std::optional<std::string> apply_mapped_vni(const std::string& value, std::size_t colon, VxlanSettings& s)
{
    const auto vni = number(value.substr(0, colon), 0, kVxlanMaxVni);
    const auto vid = number(value.substr(colon + 1), 1, kVlanIdMax);
    if (!vni || !vid)
        return fmt::format("vni={}: expected VNI:VID, a VXLAN network identifier 0..{} and the VLAN id 1..{} "
                           "its frames have in the switch", value, kVxlanMaxVni, kVlanIdMax);
    for (const VniVlan& p : s.vni_map) {
        if (p.vni == *vni)
            return fmt::format("vni={}: VNI {} is mapped twice (one VLAN per VNI)", value, *vni);
        if (p.vlan == *vid)
            return fmt::format("vni={}: VLAN {} is mapped twice (one VNI per VLAN)", value, *vid);
    }
    s.vni_map.push_back(VniVlan{*vni, uint16_t(*vid)});
    return std::nullopt;
}

// vni=N (once), or vni=N:VID (once per VLAN); `first`: no vni= came before.
std::optional<std::string> apply_vni(const std::string& value, bool first, VxlanSettings& s)
{
    const auto colon = value.find(':');
    if (!first && (colon == std::string::npos || s.vni_map.empty()))
        return "vni= given twice, or vni=N mixed with vni=N:VID: give one vni=N for a single VNI, or vni=N:VID for "
               "each VLAN the tunnel carries";
    if (colon != std::string::npos)
        return apply_mapped_vni(value, colon, s);
    const auto v = number(value, 0, kVxlanMaxVni);
    if (!v)
        return fmt::format("vni={}: expected a VXLAN network identifier 0..{} (or VNI:VID to map it to a VLAN)",
                           value, kVxlanMaxVni);
    s.vni = *v;
    return std::nullopt;
}

// local=IP or local=IP/PREFIX into `s`; an error text if it is not one.
std::optional<std::string> apply_local(const std::string& value, VxlanSettings& s)
{
    const auto slash = value.find('/');
    const auto ip = ipv4(value.substr(0, slash));
    if (!ip || *ip == 0)
        return fmt::format("local={}: expected an IPv4 address like 10.99.0.1, optionally with its prefix length like "
                           "10.99.0.1/24 (the underlay is IPv4 only)", value);
    s.local_ip = *ip;
    if (slash == std::string::npos)
        return std::nullopt;
    const auto prefix = number(value.substr(slash + 1), 0, 32);
    if (!prefix)
        return fmt::format("local={}: expected a prefix length 0..32 after the `/` (the underlay subnet, like "
                           "10.99.0.1/24)", value);
    s.prefix = uint8_t(*prefix);
    return std::nullopt;
}

// One `key=value` field into `s`; an error text if it is not one. `first`: the key's first time.
std::optional<std::string> apply_field(const std::string& key, const std::string& value, bool first, VxlanSettings& s)
{
    if (key == "local") {
        return apply_local(value, s);
    } else if (key == "remote" || key == "gateway") {
        const auto ip = ipv4(value);
        if (!ip || *ip == 0)
            return fmt::format("{}={}: expected an IPv4 address like 10.99.0.1 (the underlay is IPv4 only)", key, value);
        if (key == "gateway")
            s.gateway = *ip;
        else
            s.remotes.push_back(*ip);
    } else if (key == "vni") {
        return apply_vni(value, first, s);
    } else if (key == "dstport") {
        const auto v = number(value, 1, 65535);
        if (!v)
            return fmt::format("dstport={}: expected a UDP port 1..65535 (VXLAN's is 4789)", value);
        s.dst_port = uint16_t(*v);
    } else if (key == "underlay") {
        if (value.empty())
            return "underlay=: expected the name of a --nic port";
        s.underlay = value;
    } else {
        return fmt::format("unknown field `{}` (fields: local, remote, gateway, vni, dstport, underlay)", key);
    }
    return std::nullopt;
}

// A gateway= that cannot be the next hop, or a remote= that has none: an error text.
std::optional<std::string> unroutable(const VxlanSettings& s)
{
    if (s.gateway != 0 && !s.prefix)
        return fmt::format("gateway={} needs local= with a prefix length (local={}/24, say) to tell the remotes "
                           "behind it from those on the underlay's own subnet", ipv4_text(s.gateway), ipv4_text(s.local_ip));
    if (s.gateway != 0 && (!on_link(s.local_ip, *s.prefix, s.gateway) || s.gateway == s.local_ip))
        return fmt::format("gateway={} is not another address in local={}/{}: give the router's address on the "
                           "underlay's subnet", ipv4_text(s.gateway), ipv4_text(s.local_ip), *s.prefix);
    for (const uint32_t r : s.remotes)
        if (s.prefix && s.gateway == 0 && !on_link(s.local_ip, *s.prefix, r))
            return fmt::format("remote={} is outside local={}/{} and no gateway= is given: add gateway=IP (the "
                               "router towards it), or widen the prefix if it is on the same L2 segment",
                               ipv4_text(r), ipv4_text(s.local_ip), *s.prefix);
    return std::nullopt;
}

// What a parsed tunnel still lacks, repeats, or cannot reach.
std::optional<std::string> missing(const VxlanSettings& s, const std::set<std::string>& seen)
{
    for (const char* key : {"local", "vni", "underlay"})
        if (!seen.contains(key))
            return fmt::format("{}= is missing", key);
    if (s.remotes.empty())
        return "give at least one remote=IP (the remote VTEPs)";
    if (s.remotes.size() > kMaxVxlanRemotes)
        return fmt::format("at most {} remote= VTEPs", kMaxVxlanRemotes);
    if (std::set(s.remotes.begin(), s.remotes.end()).size() != s.remotes.size())
        return "a remote= is given twice";
    if (std::find(s.remotes.begin(), s.remotes.end(), s.local_ip) != s.remotes.end())
        return "remote= must not be the local= address";
    return unroutable(s);
}

}  // namespace

Result<VxlanSettings> parse_vxlan(const std::string& target)
{
    VxlanSettings s;
    std::set<std::string> seen;
    std::stringstream in(target);
    std::string field;
    std::getline(in, field, ',');  // NAME: the port's name (PortSpec::name)
    while (std::getline(in, field, ',')) {
        const auto eq = field.find('=');
        const std::string key = field.substr(0, eq);
        std::optional<std::string> why;
        const bool first = eq != std::string::npos && seen.insert(key).second;
        if (eq == std::string::npos)
            why = fmt::format("`{}` is not KEY=VALUE", field);
        else if (!first && key != "remote" && key != "vni")
            why = fmt::format("{}= given twice", key);
        else
            why = apply_field(key, field.substr(eq + 1), first, s);
        if (why)
            return fail("config", fmt::format("--vxlan {}: {} ({})", target, *why, kForm));
    }
    if (auto why = missing(s, seen))
        return fail("config", fmt::format("--vxlan {}: {} ({})", target, *why, kForm));
    return s;
}

const PortSpec* underlay_of(const Config& c, const std::string& name)
{
    const auto it = std::find_if(c.nics.begin(), c.nics.end(), [&](const PortSpec& n) { return n.name == name; });
    return it == c.nics.end() ? nullptr : &*it;
}

bool is_underlay(const Config& c, const std::string& nic)
{
    return std::any_of(c.vxlans.begin(), c.vxlans.end(), [&](const PortSpec& t) {
        const auto s = parse_vxlan(t.target);
        return s && s->underlay == nic;
    });
}

PortConfig tunnel_port_config(const PortSpec& tunnel, const VxlanSettings& s, const PortSpec& underlay)
{
    PortConfig p = tunnel.settings;
    if (!p.mtu_given)
        p.mtu = uint16_t(underlay.settings.mtu - kVxlanOverhead);
    if (!s.vni_map.empty()) {  // a trunk of the mapped VLANs; its native VLAN 0 has no VNI (vxlan_no_vni)
        p.vlan_mode = VlanMode::trunk;
        p.vlan = 0;
        p.trunks = VlanSet{};
        for (const VniVlan& m : s.vni_map)
            p.trunks.add(m.vlan);
    }
    return p;
}

Status check_vxlans(const Config& c)
{
    std::set<std::string> underlays;
    for (const PortSpec& t : c.vxlans) {
        auto s = parse_vxlan(t.target);
        if (!s)
            return std::unexpected(s.error());
        const PortSpec* nic = underlay_of(c, s->underlay);
        if (nic == nullptr)
            return fail("config", fmt::format("--vxlan {}: underlay={} names no --nic port; add --nic DEVARGS for it "
                                              "(its name: the devargs up to the first comma, or |name=)",
                                              t.target, s->underlay));
        if (!underlays.insert(s->underlay).second)
            return fail("config", fmt::format("--vxlan {}: another tunnel uses underlay {} already (one tunnel per "
                                              "underlay NIC)", t.target, s->underlay));
        if (!nic->settings.vlan_plain())
            return fail("config", fmt::format("--vxlan {}: the underlay --nic {} has VLAN options, but an underlay is no "
                                              "switch port; drop them (the tunnel port takes VLAN options)",
                                              t.target, nic->name));
        if (!s->vni_map.empty() && !(t.settings.vlan_plain() && t.settings.trunks == VlanSet::all_vlans()))
            return fail("config", fmt::format("--vxlan {}: a tunnel with vni=N:VID is a trunk of the mapped VLANs; drop "
                                              "its vlan=, vlan-mode= and trunks= options (or give one vni=N and "
                                              "VLAN options)", t.target));
        const int room = int(nic->settings.mtu) - int(kVxlanOverhead);
        if (room < PortConfig::kMinMtu)
            return fail("config", fmt::format("--vxlan {}: the underlay's MTU {} leaves no room for frames after the {} "
                                              "bytes of VXLAN headers: give the underlay mtu={} or more",
                                              t.target, nic->settings.mtu, kVxlanOverhead,
                                              PortConfig::kMinMtu + kVxlanOverhead));
        if (t.settings.mtu_given && t.settings.mtu > room)
            return fail("config", fmt::format("--vxlan {}: mtu={} does not fit in the underlay's MTU {} less the {} bytes "
                                              "of VXLAN headers: give mtu={} or less, or raise the underlay's mtu=",
                                              t.target, t.settings.mtu, nic->settings.mtu, kVxlanOverhead, room));
    }
    return {};
}

}  // namespace vusw
