// Parsing and checking --vxlan.
#include "control/vxlan_config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <set>
#include <sstream>

#include <fmt/format.h>

namespace vusw {
namespace {

constexpr const char* kForm = "expected NAME,local=IP,remote=IP[,remote=IP...],vni=N[,dstport=PORT],underlay=NIC";

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

// One `key=value` field into `s`; an error text if it is not one.
std::optional<std::string> apply_field(const std::string& key, const std::string& value, VxlanSettings& s)
{
    if (key == "local" || key == "remote") {
        const auto ip = ipv4(value);
        if (!ip || *ip == 0)
            return fmt::format("{}={}: expected an IPv4 address like 10.99.0.1 (the underlay is IPv4 only)", key, value);
        if (key == "local")
            s.local_ip = *ip;
        else
            s.remotes.push_back(*ip);
    } else if (key == "vni") {
        const auto v = number(value, 0, kVxlanMaxVni);
        if (!v)
            return fmt::format("vni={}: expected a VXLAN network identifier 0..{}", value, kVxlanMaxVni);
        s.vni = *v;
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
        return fmt::format("unknown field `{}` (fields: local, remote, vni, dstport, underlay)", key);
    }
    return std::nullopt;
}

// What a parsed tunnel still lacks or repeats.
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
    return std::nullopt;
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
        if (eq == std::string::npos)
            why = fmt::format("`{}` is not KEY=VALUE", field);
        else if (!seen.insert(key).second && key != "remote")
            why = fmt::format("{}= given twice", key);
        else
            why = apply_field(key, field.substr(eq + 1), s);
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

PortConfig tunnel_port_config(const PortSpec& tunnel, const PortSpec& underlay)
{
    PortConfig p = tunnel.settings;
    if (!p.mtu_given)
        p.mtu = uint16_t(underlay.settings.mtu - kVxlanOverhead);
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
