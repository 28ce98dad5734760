// The control requests that add and remove ports (add_port, del_port, reload): the
// request's fields as a port spec of the command line, handed to the Daemon (PortControl).
#include <algorithm>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "control/config.h"
#include "control/management.h"
#include "control/port_state.h"
#include "vusw/log.h"

namespace vusw {

namespace {

// add_port's port options (`keys`, as the command line's |OPTION=VALUE) after `value`; an
// error text if one is neither a string nor a number, or has a `|`.
std::optional<std::string> append_options(const nlohmann::json& request, std::initializer_list<const char*> keys,
                                          std::string& value)
{
    for (const char* key : keys) {
        if (!request.contains(key))
            continue;
        const nlohmann::json& v = request[key];
        if (!v.is_string() && !v.is_number_unsigned())
            return fmt::format("add_port: `{}` must be a string or a number", key);
        std::string option = key;
        std::replace(option.begin(), option.end(), '_', '-');
        const std::string text = v.is_string() ? v.get<std::string>() : std::to_string(v.get<uint64_t>());
        if (text.find('|') != std::string::npos)
            return fmt::format("add_port: `{}` must not contain `|`", key);
        value += fmt::format("|{}={}", option, text);
    }
    return std::nullopt;
}

}  // namespace

// {"cmd":"add_port","type":"vhost-user"|"nic","target":PATH|DEVARGS, optional "client",
// "name", "mtu", "vlan_mode", "vlan", "trunks"}: the port options of the command line.
// "type":"vxlan": see add_tunnel.
Management::Reply Management::add_port(const nlohmann::json& request)
{
    const std::string type = request.value("type", "");
    const std::string target = request.value("target", "");
    if (type == "vxlan")
        return add_tunnel(request);
    if (type != "vhost-user" && type != "nic")
        return Reply::error(ErrorCode::bad_argument, "add_port: `type` must be \"vhost-user\", \"nic\" or \"vxlan\"");
    if (target.empty() || target.find('|') != std::string::npos)
        return Reply::error(ErrorCode::bad_argument,
                            "add_port: `target` must be a socket PATH (vhost-user) or DEVARGS (nic), without `|`");
    const bool client = request.value("client", false);
    if (client && type == "nic")
        return Reply::error(ErrorCode::bad_argument, "add_port: `client` is for vhost-user ports");
    std::string value = target;
    if (auto why = append_options(request, {"name", "mtu", "vlan_mode", "vlan", "trunks"}, value))
        return Reply::error(ErrorCode::bad_argument, *why);
    const PortKind kind = type == "nic" ? PortKind::nic : client ? PortKind::vhost_client : PortKind::vhost_server;
    auto spec = parse_port_spec(std::string(port_kind_name(kind)), value, kind == PortKind::nic);
    if (!spec)
        return error_reply(spec.error());
    auto port = control_.add(kind, *spec);
    if (!port)
        return error_reply(port.error());
    return added(**port, request);
}

// {"cmd":"add_port","type":"vxlan","target":"NAME,local=IP[/PREFIX],remote=IP[,remote=IP...]
// [,gateway=IP],vni=N[,dstport=PORT],underlay=NIC" (--vxlan's value), "underlay":DEVARGS of the NIC it opens
// as NIC (optional "underlay_mtu"), optional "mtu", "vlan_mode", "vlan", "trunks"}. Without
// "underlay", underlay=NIC names a --nic of the configuration no port uses now.
Management::Reply Management::add_tunnel(const nlohmann::json& request)
{
    const std::string target = request.value("target", "");
    if (target.empty() || target.find('|') != std::string::npos)
        return Reply::error(ErrorCode::bad_argument, "add_port: a vxlan `target` is --vxlan's value without `|` options: "
                                                     "NAME,local=IP[/PREFIX],remote=IP[,remote=IP...][,gateway=IP],vni=N[,dstport=PORT],"
                                                     "underlay=NIC");
    for (const char* key : {"name", "client"})
        if (request.contains(key))
            return Reply::error(ErrorCode::bad_argument, fmt::format("add_port: `{}` is not for vxlan ports (the name is "
                                                                     "the first field of `target`)", key));
    std::string value = target;
    if (auto why = append_options(request, {"mtu", "vlan_mode", "vlan", "trunks"}, value))
        return Reply::error(ErrorCode::bad_argument, *why);
    auto spec = parse_port_spec("vxlan", value, true);
    if (!spec)
        return error_reply(spec.error());
    auto underlay = underlay_spec(request);
    if (!underlay)
        return error_reply(underlay.error());
    if (!control_.add_tunnel)
        return Reply::error(ErrorCode::failed, "add_port: this daemon cannot add tunnels");
    auto port = control_.add_tunnel(*spec, *underlay);
    if (!port)
        return error_reply(port.error());
    return added(**port, request);
}

// The port works whether or not it could be recorded: a state file that cannot be
// written costs the port its restart, not its traffic (the reply's "persisted" says so).
Management::Reply Management::added(Port& port, const nlohmann::json& request)
{
    const Status kept = state_.record(port.name(), request);
    if (!kept)
        log(LogLevel::error, "port {} added, but not recorded: {}; it will not come back when vuswitchd restarts (make the "
                             "state file's directory writable for vuswitchd, or --state-file none)",
                             port.name(), kept.error().detail);
    return {{{"port", ports_json({&port}).at(0)}, {"persisted", kept.has_value() && !state_.path().empty()}}};
}

// add_port's "underlay" (DEVARGS) and "underlay_mtu" as a --nic; nullopt without them.
Result<std::optional<PortSpec>> Management::underlay_spec(const nlohmann::json& request)
{
    if (!request.contains("underlay")) {
        if (request.contains("underlay_mtu"))
            return fail("config", "add_port: `underlay_mtu` needs `underlay` (the underlay NIC's DEVARGS)");
        return std::optional<PortSpec>();
    }
    const nlohmann::json& devargs = request["underlay"];
    if (!devargs.is_string() || devargs.get<std::string>().empty() || devargs.get<std::string>().find('|') != std::string::npos)
        return fail("config", "add_port: `underlay` must be the underlay NIC's DEVARGS (e.g. net_af_packet0,iface=eth1), "
                              "without `|`");
    std::string value = devargs.get<std::string>();
    nlohmann::json mtu = nlohmann::json::object();
    if (request.contains("underlay_mtu"))
        mtu["mtu"] = request["underlay_mtu"];
    if (auto why = append_options(mtu, {"mtu"}, value))
        return fail("config", fmt::format("{} (underlay_mtu)", *why));
    auto spec = parse_port_spec("underlay", value, true);
    if (!spec)
        return std::unexpected(spec.error());
    return std::optional(std::move(*spec));
}

Management::Reply Management::del_port(const nlohmann::json& request)
{
    if (!request.contains("port") || !request["port"].is_string())
        return Reply::error(ErrorCode::bad_argument, "del_port: `port` must be a port name");
    const std::string name = request["port"].get<std::string>();
    const Status removed = control_.remove(name);
    // Forgotten once it is gone, even if a step of its removal failed (it is not coming back).
    const bool gone = std::none_of(ports_.begin(), ports_.end(), [&](const Port* p) { return p->name() == name; });
    if (auto ok = gone ? state_.forget(name) : Status(); !ok)
        log(LogLevel::error, "port {} removed, but still recorded: {}; it will come back when vuswitchd restarts (make "
                             "the state file's directory writable for vuswitchd, then del-port it again after the restart)",
                             name, ok.error().detail);
    if (!removed)
        return error_reply(removed.error());
    return {{{"port", name}, {"removed", true}}};
}

Management::Reply Management::reload(const nlohmann::json&)
{
    auto report = control_.reload();
    if (!report)
        return error_reply(report.error());
    return {{{"added", report->added},
             {"removed", report->removed},
             {"kept", report->kept},
             {"failed", report->failed},
             {"needs_restart", report->ignored}}};
}

}  // namespace vusw
