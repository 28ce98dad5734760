// Management socket.
#include "control/management.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <algorithm>
#include <ctime>
#include <optional>
#include <set>

#include "control/config.h"
#include "control/port_state.h"
#include "control/scheduler.h"
#include "control/vhost_user/message.h"
#include "ports/vhost_port.h"
#include "ports/vxlan_port.h"
#include "vusw/fdb.h"
#include "vusw/log.h"
#include "vusw/pmd.h"

namespace vusw {
namespace {

std::string utc_text(std::chrono::system_clock::time_point when)
{
    const std::time_t t = std::chrono::system_clock::to_time_t(when);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char text[32];
    std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return text;
}

std::string mac_text(const MacAddr& m)
{
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5]);
}

// A tunnel's VTEPs, with each remote's next hop ("direct", or the gateway's IP) and the
// MAC its frames go to as learned (null: not yet), its VNI (null with
// a map) or VNI map with each VNI's frames, its ARP work and its underlay NIC's own
// counters (frames on the wire, both ways).
nlohmann::json vxlan_details(const VxlanPort& port)
{
    const VxlanSettings& s = port.settings();
    const VxlanTotals v = port.vxlan_totals();
    const auto macs = port.inner_macs_by_remote();
    nlohmann::json remotes = nlohmann::json::array();
    for (std::size_t i = 0; i < s.remotes.size(); ++i) {
        const auto mac = port.neighbour(i);
        const uint32_t hop = port.next_hop(i);
        remotes.push_back({{"ip", ipv4_text(s.remotes[i])},
                           {"next_hop", hop == s.remotes[i] ? "direct" : ipv4_text(hop)},
                           {"mac", mac ? nlohmann::json(mac_text(*mac)) : nlohmann::json()},
                           {"encapsulated", v.encapsulated[i]}, {"decapsulated", v.decapsulated[i]},
                           {"inner_macs", macs[i]}});
    }
    const PortTotals u = port.underlay().totals();
    nlohmann::json underlay_drops = nlohmann::json::object();
    for (std::size_t d = 0; d < u.drops.size(); ++d)
        if (u.drops[d] != 0)
            underlay_drops[std::string(drop_name(Drop(d)))] = u.drops[d];
    nlohmann::json vni_map = nlohmann::json::array();  // vni=N:VID...; empty with one VNI
    for (std::size_t i = 0; i < s.vni_map.size(); ++i)
        vni_map.push_back({{"vni", s.vni_map[i].vni}, {"vlan", s.vni_map[i].vlan},
                           {"encapsulated", v.vni_encapsulated[i]}, {"decapsulated", v.vni_decapsulated[i]}});
    return {{"local", ipv4_text(s.local_ip)}, {"local_mac", mac_text(port.local_mac())},
            {"prefix", s.prefix ? nlohmann::json(*s.prefix) : nlohmann::json()},
            {"gateway", s.gateway != 0 ? nlohmann::json(ipv4_text(s.gateway)) : nlohmann::json()},
            {"vni", s.vni_map.empty() ? nlohmann::json(s.vni) : nlohmann::json()}, {"vni_map", vni_map},
            {"dstport", s.dst_port}, {"remotes", remotes},
            {"arp_requests_sent", v.arp_requests_sent}, {"arp_replies_sent", v.arp_replies_sent},
            {"arp_received", v.arp_received}, {"neighbours_learned", v.neighbours_learned},
            {"underlay", {{"name", port.underlay().name()}, {"rx_packets", u.rx_packets}, {"rx_bytes", u.rx_bytes},
                          {"tx_packets", u.tx_packets}, {"tx_bytes", u.tx_bytes}, {"drops", underlay_drops}}}};
}

nlohmann::json vhost_details(const VhostPort& port)
{
    nlohmann::json j;
    j["path"] = port.path();
    j["mode"] = port.client_mode() ? "client" : "server";
    const ProtocolStats& p = port.protocol();
    MutexLock lock(p.mutex);
    j["protocol_errors"] = nlohmann::json(p.errors);
    nlohmann::json recent = nlohmann::json::array();
    for (const ProtocolStats::ErrorEvent& e : p.recent_errors)
        recent.push_back({{"time", utc_text(e.when)}, {"reason", e.reason}, {"detail", e.detail}});
    j["last_errors"] = recent;
    nlohmann::json messages = nlohmann::json::object();
    for (uint32_t i = 0; i < p.messages.size(); ++i)
        if (p.messages[i] != 0)
            messages[std::string(vhost_request_name(i))] = p.messages[i];
    j["messages"] = messages;
    j["mem_regions"] = p.mem_regions;
    j["mem_regions_dma"] = p.mem_regions_dma;
    j["mem_updates"] = nlohmann::json(p.mem_updates);
    j["grace_periods"] = port.grace().count.get();
    j["grace_seconds"] = port.grace().sum.load(std::memory_order_relaxed);
    j["rem_mem_reg_fds"] = p.rem_mem_reg_fds;
    // Live migration: whether PMD cores mark their writes in the front-end's dirty log now.
    j["dirty_log"] = {{"enabled", p.logging}, {"size", p.log_size}, {"pages", port.logged_pages()},
                      {"missed", port.log_missed()}};
    j["connections"] = p.connections;
    nlohmann::json broken = nlohmann::json::object();
    for (std::size_t f = 1; f < std::size_t(QueueFault::count_); ++f)
        if (port.broken(QueueFault(f)) != 0)
            broken[std::string(fault_name(QueueFault(f)))] = port.broken(QueueFault(f));
    j["broken"] = broken;
    j["broken_queues"] = port.broken_total();
    j["features"] = vhost_user::feature_names(p.features);
    j["features_bits"] = fmt::format("{:#x}", p.features);
    j["protocol_features"] = vhost_user::protocol_feature_names(p.protocol_features);
    j["ring_type"] = p.features & vhost_user::feature::kRingPacked ? "packed" : "split";
    j["frontend_mtu"] = p.mtu != 0 ? nlohmann::json(p.mtu) : nlohmann::json(nullptr);  // NET_SET_MTU
    nlohmann::json queues = nlohmann::json::array();
    for (uint16_t pair = 0; pair < kMaxQueuePairs; ++pair) {
        const ProtocolStats::Ring& rx = p.rings[2 * pair];
        const ProtocolStats::Ring& tx = p.rings[2 * pair + 1];
        if (rx.size == 0 && tx.size == 0)
            continue;  // a pair the front-end never set up
        const auto ring = [](const ProtocolStats::Ring& r) {
            return nlohmann::json{{"size", r.size}, {"started", r.started}, {"enabled", r.enabled}};
        };
        const unsigned owner = port.has_queue(pair) ? port.owner(pair) : kNoOwner;
        const QueueCounters& c = port.queue_counters(pair);
        queues.push_back({{"pair", pair}, {"rx", ring(rx)}, {"tx", ring(tx)},
                          {"pmd", owner < kMaxPmds ? nlohmann::json(owner) : nlohmann::json(nullptr)},
                          {"rx_packets", c.rx_packets.get()}, {"tx_packets", c.tx_packets.get()}});
    }
    j["queues"] = queues;
    return j;
}

}  // namespace

nlohmann::json describe_ports(const std::vector<Port*>& ports)
{
    nlohmann::json list = nlohmann::json::array();
    for (const Port* port : ports) {
        const PortTotals t = port->totals();
        nlohmann::json j;
        j["name"] = port->name();
        j["type"] = port->kind();
        j["state"] = port->state();
        const unsigned owner = port->owner(0);
        j["pmd"] = owner < kMaxPmds ? nlohmann::json(owner) : nlohmann::json(nullptr);  // null while it moves
        j["rx_packets"] = t.rx_packets;
        j["rx_bytes"] = t.rx_bytes;
        j["tx_packets"] = t.tx_packets;
        j["tx_bytes"] = t.tx_bytes;
        j["rx_zero_copy"] = t.rx_zero_copy;
        nlohmann::json drops = nlohmann::json::object();
        for (std::size_t d = 0; d < t.drops.size(); ++d)
            if (t.drops[d] != 0)
                drops[std::string(drop_name(Drop(d)))] = t.drops[d];
        j["drops"] = drops;
        const PortConfig& c = port->config();
        const EffectiveMtu mtu = port->effective_mtu();
        j["mtu"] = mtu.mtu;  // what the switch enforces now (mtu.h)
        j["mtu_source"] = mtu_source_name(mtu.source);
        j["vlan_mode"] = vlan_mode_name(c.vlan_mode);
        j["vlan"] = c.vlan;  // access: its VLAN; trunk: its native VLAN
        j["trunks"] = c.vlan_mode == VlanMode::trunk ? nlohmann::json(c.trunks.to_string()) : nlohmann::json(nullptr);
        if (const auto* vhost = dynamic_cast<const VhostPort*>(port))
            j.update(vhost_details(*vhost));
        if (const auto* tunnel = dynamic_cast<const VxlanPort*>(port))
            j["vxlan"] = vxlan_details(*tunnel);
        list.push_back(std::move(j));
    }
    return list;
}

Management::Management(std::string path, EventLoop& loop, const std::vector<Port*>& ports, const Fdb& fdb,
                       const std::vector<Pmd*>& pmds, Scheduler& scheduler, const Config& config, PortControl control,
                       PortState& state)
    : path_(std::move(path)), loop_(loop), ports_(ports), fdb_(fdb), pmds_(pmds), scheduler_(scheduler), config_(config),
      control_(std::move(control)), state_(state)
{
}

Management::~Management()
{
    connections_.reset();  // before the socket they come from
    if (listen_) {
        loop_.unwatch(listen_.get());
        ::unlink(path_.c_str());
    }
}

Status Management::start()
{
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path_.size() >= sizeof(addr.sun_path))
        return fail("config", fmt::format("--control {}: path too long", path_));
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    ::unlink(path_.c_str());
    listen_.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (bind_with_access(listen_.get(), addr, path_, config_.ctl_socket_access) != 0 || listen(listen_.get(), 8) != 0)
        return fail("socket", fmt::format("cannot listen on control socket {}: {}", path_, strerror(errno)));
    ControlConnections::Protocol protocol{[this](std::string_view line) { return answer(line); },
                                          [this](ControlConnections::Drop why, const ControlConnections::Limits& limits) {
                                              return refuse(why, limits);
                                          }};
    connections_ = std::make_unique<ControlConnections>(loop_, listen_.get(), std::move(protocol), ControlConnections::Limits{});
    return connections_->start();
}

namespace {

// A reply line: bytes that are not UTF-8 (a socket path, a request echoed in an error)
// become U+FFFD instead of making dump() throw.
std::string reply_line(nlohmann::json reply)
{
    reply["version"] = kProtocolVersion;
    return reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace

std::string Management::answer(std::string_view line)
{
    try {
        return reply_line(handle(nlohmann::json::parse(line)));
    } catch (const nlohmann::json::exception& e) {  // not JSON (or not UTF-8)
        return reply_line(
            Reply::error(ErrorCode::bad_request,
                         fmt::format("not a JSON object on one line: {}; send e.g. {{\"cmd\":\"version\"}}", e.what()))
                .body);
    } catch (const std::exception& e) {  // one request's failure must not end the daemon
        log(LogLevel::error, "control socket: a request failed: {}", e.what());
        return reply_line(Reply::error(ErrorCode::failed, fmt::format("the request failed: {}", e.what())).body);
    }
}

std::string Management::refuse(ControlConnections::Drop why, const ControlConnections::Limits& limits) const
{
    const double deadline = std::chrono::duration<double>(limits.deadline).count();
    switch (why) {
    case ControlConnections::Drop::busy:
        return reply_line(Reply::error(ErrorCode::busy, fmt::format("{} control connections are open already; try "
                                                                    "again (each gets at most {} s)",
                                                                    limits.max_connections, deadline))
                              .body);
    case ControlConnections::Drop::too_long:
        return reply_line(Reply::error(ErrorCode::bad_request,
                                       fmt::format("no newline in the first {} bytes: send one JSON object on one line",
                                                   limits.max_line))
                              .body);
    default:
        return reply_line(Reply::error(ErrorCode::bad_request,
                                       fmt::format("no complete request line within {} s: send one JSON object "
                                                   "and a newline at once",
                                                   deadline))
                              .body);
    }
}

namespace {

double percent(double share)
{
    return std::round(1000 * share) / 10;
}

// The ports PMD `pmd` polls, each with the queues it polls of them and their loads.
nlohmann::json polled_ports(const std::vector<QueuePlacement>& placed, unsigned pmd)
{
    nlohmann::json ports = nlohmann::json::array();
    const Port* last = nullptr;
    for (const QueuePlacement& p : placed) {  // by port, then queue
        if (p.pmd != pmd)
            continue;
        if (p.port != last)
            ports.push_back({{"name", p.port->name()}, {"pinned", p.pinned}, {"cycles", 0}, {"load_pct", 0.0},
                             {"queues", nlohmann::json::array()}, {"queue_load", nlohmann::json::array()}});
        last = p.port;
        nlohmann::json& port = ports.back();
        port["cycles"] = port["cycles"].get<uint64_t>() + p.cycles;
        port["load_pct"] = port["load_pct"].get<double>() + percent(p.share);
        port["queues"].push_back(p.queue);
        port["queue_load"].push_back({{"queue", p.queue}, {"cycles", p.cycles}, {"load_pct", percent(p.share)}});
    }
    return ports;
}

}  // namespace


std::string_view error_code_name(ErrorCode code)
{
    constexpr std::string_view kNames[] = {"bad_request", "unknown_command", "bad_argument", "no_such_port", "failed",
                                           "port_exists", "busy"};
    return kNames[int(code)];
}

Management::Reply Management::Reply::error(ErrorCode code, std::string message)
{
    return {{{"error", {{"code", std::string(error_code_name(code))}, {"message", std::move(message)}}}}};
}

Management::Reply error_reply(const Error& e)
{
    const std::string_view reason = e.reason;
    const ErrorCode code = reason == "no_port"                        ? ErrorCode::no_such_port
                           : reason == "bad_pmd" || reason == "config" ? ErrorCode::bad_argument
                           : reason == "exists"                        ? ErrorCode::port_exists
                                                                       : ErrorCode::failed;
    return Management::Reply::error(code, e.detail);
}

namespace {

// Fields that count events since start: clear_stats zeroes them in the views.
bool is_counter(std::string_view key)
{
    static const std::set<std::string_view> kCounters = {
        "rx_packets",  "rx_bytes", "tx_packets", "tx_bytes",      "rx_zero_copy",    "connections",
        "grace_periods", "grace_seconds", "busy_cycles", "idle_cycles", "iterations", "packets",
        "broken_queues", "rem_mem_reg_fds", "pages", "missed", "iterations_over_1ms", "turns",
        "arp_requests_sent", "arp_replies_sent", "arp_received", "neighbours_learned", "encapsulated",
        "decapsulated"};
    return kCounters.contains(key);
}

// Objects whose members are all counters (by reason, by message type).
bool is_counter_group(std::string_view key)
{
    return key == "drops" || key == "protocol_errors" || key == "messages" || key == "mem_updates" || key == "broken";
}

void subtract_value(nlohmann::json& now, const nlohmann::json& base)
{
    if (now.is_number_unsigned() && base.is_number_unsigned())
        now = now.get<uint64_t>() - std::min(now.get<uint64_t>(), base.get<uint64_t>());
    else if (now.is_number() && base.is_number())
        now = std::max(0.0, now.get<double>() - base.get<double>());
}

// The identity of a list item: its name, PMD or queue pair; null for plain lists.
nlohmann::json item_id(const nlohmann::json& item)
{
    for (const char* key : {"name", "pair", "pmd"})
        if (item.is_object() && item.contains(key))
            return item[key];
    return nullptr;
}

void subtract_in(nlohmann::json& now, const nlohmann::json& base, bool counters);

void subtract_list(nlohmann::json& now, const nlohmann::json& base, bool counters)
{
    for (std::size_t i = 0; i < now.size(); ++i) {
        const nlohmann::json id = item_id(now[i]);
        const nlohmann::json* match = nullptr;
        if (id.is_null())
            match = i < base.size() ? &base[i] : nullptr;
        else
            for (const auto& b : base)
                if (item_id(b) == id)
                    match = &b;
        if (match == nullptr)
            continue;  // new since the baseline: all of it counts
        if (now[i].is_structured())
            subtract_in(now[i], *match, false);
        else if (counters)
            subtract_value(now[i], *match);
    }
}

void subtract_in(nlohmann::json& now, const nlohmann::json& base, bool counters)
{
    if (!now.is_object() || !base.is_object())
        return;
    for (auto it = now.begin(); it != now.end();) {
        const std::string& key = it.key();
        const auto b = base.find(key);
        if (b == base.end()) {
            ++it;
            continue;
        }
        const bool counter = counters || is_counter(key);
        if (it->is_object())
            subtract_in(*it, *b, is_counter_group(key));
        else if (it->is_array() && b->is_array())
            subtract_list(*it, *b, counter);
        else if (counter)
            subtract_value(*it, *b);
        // A reason that counted nothing since the baseline is not listed (as before any).
        if (counters && it->is_number() && it->get<double>() == 0)
            it = now.erase(it);
        else
            ++it;
    }
}

}  // namespace

void subtract_baseline(nlohmann::json& now, const nlohmann::json& base)
{
    if (now.is_array())
        subtract_list(now, base, false);
    else
        subtract_in(now, base, false);
}

nlohmann::json describe_config(const Config& c)
{
    nlohmann::json ports = nlohmann::json::array();
    const auto add = [&](const std::vector<PortSpec>& specs, const char* flag) {
        for (const PortSpec& s : specs) {
            const PortConfig& p = s.settings;
            ports.push_back({{"name", s.name}, {"flag", flag}, {"target", s.target},
                             {"mtu", p.mtu_given ? nlohmann::json(p.mtu) : nlohmann::json(nullptr)},
                             {"vlan_mode", vlan_mode_name(p.vlan_mode)}, {"vlan", p.vlan},
                             {"trunks", p.vlan_mode == VlanMode::trunk ? nlohmann::json(p.trunks.to_string())
                                                                       : nlohmann::json(nullptr)}});
        }
    };
    add(c.nics, "nic");  // creation order (port_names; the underlay NICs of tunnels too)
    add(c.vxlans, "vxlan");
    add(c.vhost_server, "vhost-user");
    add(c.vhost_client, "vhost-user-client");
    nlohmann::json pins = nlohmann::json::object();
    for (const auto& [port, pmd] : c.pins)
        pins[port] = pmd;
    std::vector<std::string> lcores;
    for (std::size_t i = 0; i < c.lcores.size(); ++i) {
        const unsigned id = c.lcores[i];
        const int cpu = id < c.lcore_cpus.size() ? c.lcore_cpus[id] : -1;
        lcores.push_back(cpu < 0 ? std::to_string(id) : fmt::format("{}@{}", id, cpu));
    }
    return {{"ports", ports},
            {"embedded_default_ports", c.used_default_ports},
            {"lcores", fmt::format("{}", fmt::join(lcores, ","))},
            {"pins", pins},
            {"rebalance_interval", c.rebalance_interval_s},
            {"rebalance_threshold", c.rebalance_threshold_pct},
            {"mac_age", c.mac_age_s},
            {"zero_copy_min", c.zero_copy_min == 0 ? nlohmann::json("off") : nlohmann::json(c.zero_copy_min)},
            {"metrics", c.metrics},
            {"control", c.control},
            {"run_dir", c.run_dir},
            {"state_file", c.state_file.empty() ? "none" : c.state_file},
            {"file_prefix", c.file_prefix},
            {"memory", c.memory_mb},
            {"mbufs", pool_mbufs(c)},
            {"no_huge", c.no_huge},
            {"huge_dir", c.huge_dir},
            {"user", c.user ? nlohmann::json(c.user->name) : nlohmann::json(nullptr)},
            {"group", c.group ? nlohmann::json(c.group->name) : nlohmann::json(nullptr)},
            {"socket_mode", fmt::format("{:04o}", c.socket_access.mode)},
            {"socket_group", c.socket_access.group ? nlohmann::json(c.socket_access.group->name) : nlohmann::json(nullptr)},
            {"ctl_socket_mode", fmt::format("{:04o}", c.ctl_socket_access.mode)},
            {"ctl_socket_group", c.ctl_socket_access.group ? nlohmann::json(c.ctl_socket_access.group->name)
                                                           : nlohmann::json(nullptr)},
            {"log_level", log_level_name(log_level())},  // now (set log-level changes it)
            {"debug_dirty_log_always", c.debug_dirty_log_always},
            {"debug_no_dirty_log", c.debug_no_dirty_log}};
}

// The command table: one row per "cmd". A new command is a row and a member function.
namespace {
constexpr Management::Verb kVerbs[] = {
    {"show_ports", &Management::show_ports},   {"show_port", &Management::show_port},
    {"show_fdb", &Management::show_fdb},       {"show_pmd", &Management::show_pmd},
    {"show_config", &Management::show_config}, {"rebalance", &Management::rebalance},
    {"pin", &Management::pin},                 {"clear_stats", &Management::clear_stats},
    {"set_log_level", &Management::set_log_level}, {"version", &Management::version},
    {"add_port", &Management::add_port},       {"del_port", &Management::del_port},
    {"reload", &Management::reload},
};
}  // namespace

std::vector<std::string_view> Management::commands()
{
    std::vector<std::string_view> names;
    for (const Verb& v : kVerbs)
        names.push_back(v.cmd);
    return names;
}

nlohmann::json Management::handle(const nlohmann::json& request)
{
    Reply reply = [&] {
        if (!request.is_object() || !request.contains("cmd") || !request["cmd"].is_string())
            return Reply::error(ErrorCode::bad_request,
                                "a request is a JSON object with a string \"cmd\", e.g. {\"cmd\":\"version\"}");
        const std::string cmd = request["cmd"].get<std::string>();
        for (const Verb& v : kVerbs)
            if (v.cmd == cmd) {
                try {
                    return (this->*v.run)(request);
                } catch (const nlohmann::json::exception& e) {  // an argument of the wrong JSON type
                    return Reply::error(ErrorCode::bad_argument, fmt::format("{}: {}", cmd, e.what()));
                }
            }
        return Reply::error(ErrorCode::unknown_command,
                            fmt::format("unknown command `{}` (known: {})", cmd, fmt::join(commands(), ", ")));
    }();
    reply.body["version"] = kProtocolVersion;
    return std::move(reply.body);
}

nlohmann::json Management::ports_json(const std::vector<Port*>& ports) const
{
    nlohmann::json list = describe_ports(ports);
    for (auto& port : list)
        port["origin"] = state_.recorded(port.at("name").get<std::string>()) ? "runtime" : "config";
    return list;
}

Management::Reply Management::show_ports(const nlohmann::json&)
{
    nlohmann::json ports = ports_json(ports_);
    subtract_baseline(ports, base_ports_);
    return {{{"ports", std::move(ports)}}};
}

namespace {

struct PositionArg {
    const VhostPort* port;
    uint16_t ring;
};

uint64_t read_position(void* arg, PmdContext&)
{
    const auto* a = static_cast<const PositionArg*>(arg);
    const VhostPort::RingPosition p = a->port->ring_position(a->ring);
    return p.last_avail | uint64_t(p.used) << 16;
}

nlohmann::json memory_regions(const VhostPort& port)
{
    nlohmann::json list = nlohmann::json::array();
    if (const auto& table = port.memory().owned())
        for (const auto& r : table->regions())
            list.push_back({{"gpa", fmt::format("{:#x}", r->desc().gpa)}, {"size", r->desc().size},
                            {"uva", fmt::format("{:#x}", r->desc().uva)}, {"dma", r->dma()}});
    return list;
}

}  // namespace

// Adds each ring's state, position and fault to show_port's queue list.
nlohmann::json Management::queue_details(const Port& port, const nlohmann::json& queues) const
{
    const auto* vhost = dynamic_cast<const VhostPort*>(&port);
    nlohmann::json out = queues;
    for (auto& q : out) {
        const uint16_t pair = q.at("pair").get<uint16_t>();
        const unsigned owner = port.has_queue(pair) ? port.owner(pair) : kNoOwner;
        for (const auto& [side, ring] : {std::pair{"rx", uint16_t(2 * pair)}, std::pair{"tx", uint16_t(2 * pair + 1)}}) {
            nlohmann::json& r = q[side];
            const QueueFault fault = vhost->ring_fault(ring);
            r["fault"] = fault == QueueFault::none ? nlohmann::json(nullptr) : nlohmann::json(fault_name(fault));
            r["state"] = fault != QueueFault::none ? fmt::format("broken ({})", fault_name(fault))
                         : r.value("enabled", false) && r.value("started", false) ? "enabled"
                         : r.value("started", false)                              ? "started"
                                                                                  : "stopped";
            // The position is the owning core's: ask it between bursts (null while the queue moves).
            PositionArg arg{vhost, ring};
            std::optional<uint64_t> pos;
            if (!port.has_queue(pair)) {  // no core polls it
                const VhostPort::RingPosition p = vhost->ring_position(ring);
                pos = p.last_avail | uint64_t(p.used) << 16;
            }
            for (Pmd* pmd : pmds_)
                if (owner < kMaxPmds && pmd->index() == owner)
                    if (auto got = pmd->execute({PmdCommand::Kind::call, nullptr, &read_position, &arg}); got)
                        pos = *got;
            r["last_avail"] = pos ? nlohmann::json(*pos & 0xffff) : nlohmann::json(nullptr);
            r["used"] = pos ? nlohmann::json(*pos >> 16 & 0xffff) : nlohmann::json(nullptr);
        }
    }
    return out;
}

Management::Reply Management::show_port(const nlohmann::json& request)
{
    const std::string name = request.value("port", "");
    const auto it = std::find_if(ports_.begin(), ports_.end(), [&](const Port* p) { return p->name() == name; });
    if (it == ports_.end()) {
        std::vector<std::string> names;
        for (const Port* p : ports_)
            names.push_back(p->name());
        return Reply::error(ErrorCode::no_such_port,
                            fmt::format("no port named `{}` (ports: {})", name, fmt::join(names, ", ")));
    }
    nlohmann::json port = ports_json({*it}).at(0);
    for (const auto& base : base_ports_)
        if (base.value("name", "") == name)
            subtract_baseline(port, base);
    if (const auto* vhost = dynamic_cast<const VhostPort*>(*it)) {
        port["queues"] = queue_details(**it, port["queues"]);
        port["memory_regions"] = memory_regions(*vhost);
    }
    if (!cleared_at_.empty())
        port["counters_since"] = cleared_at_;
    return {{{"port", std::move(port)}}};
}

Management::Reply Management::show_fdb(const nlohmann::json&)
{
    nlohmann::json list = nlohmann::json::array();
    for (const FdbEntry& e : fdb_.entries()) {
        const auto port = std::find_if(ports_.begin(), ports_.end(), [&](const Port* p) { return p->id() == e.port; });
        if (port == ports_.end())
            continue;  // a removed port's entry, flushed after its grace period
        list.push_back({{"mac", fmt::format("{:012x}", e.mac)}, {"vlan", e.vlan}, {"port", (*port)->name()},
                        {"age", e.age_s}});
    }
    return {{{"fdb", list}}};
}

// Each PMD's counters as they are (clear_stats keeps a copy as the baseline).
nlohmann::json Management::pmd_counters() const
{
    nlohmann::json list = nlohmann::json::array();
    for (const Pmd* pmd : pmds_) {
        const PmdStats s = pmd->stats();
        list.push_back({{"pmd", pmd->index()}, {"busy_cycles", s.busy_cycles}, {"idle_cycles", s.idle_cycles},
                        {"iterations", s.iterations}, {"packets", s.packets},
                        {"iterations_over_1ms", s.turns.longer_than(1e-3)},
                        {"packets_per_turn", {{"le", PacketsPerTurn::kBounds}, {"turns", s.per_turn.buckets}}}});
    }
    return list;
}

Management::Reply Management::show_pmd(const nlohmann::json&)
{
    const std::vector<QueuePlacement> placed = scheduler_.placements();
    nlohmann::json list = pmd_counters();
    subtract_baseline(list, base_pmds_);
    for (std::size_t i = 0; i < pmds_.size(); ++i) {
        const Pmd* pmd = pmds_[i];
        const PmdStats s = pmd->stats();
        nlohmann::json& j = list[i];
        const uint64_t busy = j["busy_cycles"].get<uint64_t>(), idle = j["idle_cycles"].get<uint64_t>(),
                       packets = j["packets"].get<uint64_t>();
        j["lcore"] = pmd->lcore();
        j["tsc_hz"] = s.tsc_hz;
        j["longest_iteration_cycles"] = s.turns.longest;  // since start (a maximum: clear_stats keeps it)
        // Like OVS's pmd-stats-show: busy cycles per frame moved, and the busy share.
        j["cycles_per_packet"] = packets > 0 ? nlohmann::json(double(busy) / double(packets)) : nlohmann::json(nullptr);
        j["busy_pct"] = busy + idle > 0 ? percent(double(busy) / double(busy + idle)) : 0.0;
        j["ports"] = polled_ports(placed, pmd->index());
    }
    nlohmann::json reply = {{"pmds", list}, {"load_window_seconds", Scheduler::kWindowSeconds},
                            {"port_moves", scheduler_.moves()}};
    if (!cleared_at_.empty())
        reply["counters_since"] = cleared_at_;
    return {reply};
}

Management::Reply Management::show_config(const nlohmann::json&)
{
    return {{{"config", describe_config(config_)}}};
}

Management::Reply Management::rebalance(const nlohmann::json&)
{
    auto done = scheduler_.rebalance();
    if (!done)
        return error_reply(done.error());
    nlohmann::json moves = nlohmann::json::array();
    for (const QueueMove& m : done->moves)
        moves.push_back({{"port", m.port}, {"queue", m.queue}, {"from", m.from}, {"to", m.to}});
    return {{{"moves", moves}, {"worthwhile", done->plan.worthwhile},
             {"imbalance_before", imbalance(done->plan.current_load)}, {"imbalance_after", imbalance(done->plan.load)},
             {"load_before", done->plan.current_load}, {"load_after", done->plan.load}}};
}

Management::Reply Management::pin(const nlohmann::json& request)
{
    if (!request.contains("port") || !request["port"].is_string())
        return Reply::error(ErrorCode::bad_argument, "pin: `port` must be a port name");
    const std::string port = request["port"].get<std::string>();
    if (!request.contains("pmd") || request["pmd"].is_null()) {
        auto ok = scheduler_.unpin(port);
        return ok ? Reply{{{"port", port}, {"pinned", false}}} : error_reply(ok.error());
    }
    if (!request["pmd"].is_number_unsigned())
        return Reply::error(ErrorCode::bad_argument, "pin: `pmd` must be a PMD index (0, 1, ...) or null to unpin");
    auto moved = scheduler_.pin(port, request["pmd"].get<unsigned>());
    if (!moved)
        return error_reply(moved.error());
    nlohmann::json moves = nlohmann::json::array();
    for (const QueueMove& m : *moved)
        moves.push_back({{"queue", m.queue}, {"from", m.from}, {"to", m.to}});
    // from/to: where queue 0 was and is (every port has it).
    return {{{"port", port}, {"pinned", true}, {"from", moved->at(0).from}, {"to", moved->at(0).to}, {"moves", moves}}};
}

// The views count from zero again; the counters themselves (and /metrics) go on.
Management::Reply Management::clear_stats(const nlohmann::json&)
{
    base_ports_ = describe_ports(ports_);
    base_pmds_ = pmd_counters();
    cleared_at_ = utc_text(std::chrono::system_clock::now());
    log(LogLevel::info, "statistics of vuswitchctl's views cleared (Prometheus counters go on)");
    return {{{"cleared", true}, {"counters_since", cleared_at_}}};
}

Management::Reply Management::set_log_level(const nlohmann::json& request)
{
    LogLevel level;
    if (!request.contains("level") || !request["level"].is_string() ||
        !parse_log_level(request["level"].get<std::string>(), level))
        return Reply::error(ErrorCode::bad_argument,
                            fmt::format("set_log_level: `level` must be one of error, warn, info, debug, not {}",
                                        request.value("level", nlohmann::json()).dump()));
    const LogLevel previous = log_level();
    vusw::set_log_level(level);
    log(LogLevel::info, "log level {} (was {}), set through the control socket", log_level_name(level),
        log_level_name(previous));
    return {{{"level", log_level_name(level)}, {"previous", log_level_name(previous)}}};
}

Management::Reply Management::version(const nlohmann::json&)
{
    nlohmann::json reply = {{"daemon", "vuswitchd"}, {"daemon_version", VUSW_VERSION}, {"protocol_version", kProtocolVersion}};
    if (connections_) {  // the control socket's own health: connections open now, and dropped by reason
        nlohmann::json dropped = nlohmann::json::object();
        for (std::size_t d = 0; d < std::size_t(ControlConnections::Drop::count_); ++d)
            dropped[std::string(ControlConnections::drop_name(ControlConnections::Drop(d)))] =
                connections_->dropped(ControlConnections::Drop(d));
        reply["control_socket"] = {{"open", connections_->open()}, {"dropped", dropped}};
    }
    return {reply};
}

}  // namespace vusw
