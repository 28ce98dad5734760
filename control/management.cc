// Management socket.
#include "control/management.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "control/scheduler.h"
#include "control/vhost_user/message.h"
#include "ports/vhost_port.h"
#include "vusw/fdb.h"
#include "vusw/log.h"
#include "vusw/pmd.h"

namespace vusw {
namespace {

nlohmann::json vhost_details(const VhostPort& port)
{
    nlohmann::json j;
    j["path"] = port.path();
    j["mode"] = port.client_mode() ? "client" : "server";
    const ProtocolStats& p = port.protocol();
    std::lock_guard lock(p.mutex);
    j["protocol_errors"] = nlohmann::json(p.errors);
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
        list.push_back(std::move(j));
    }
    return list;
}

Management::Management(std::string path, EventLoop& loop, const std::vector<Port*>& ports, const Fdb& fdb,
                       const std::vector<Pmd*>& pmds, Scheduler& scheduler)
    : path_(std::move(path)), loop_(loop), ports_(ports), fdb_(fdb), pmds_(pmds), scheduler_(scheduler)
{
}

Management::~Management()
{
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
    if (bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(listen_.get(), 8) != 0)
        return fail("socket", fmt::format("cannot listen on control socket {}: {}", path_, strerror(errno)));
    return loop_.watch(listen_.get(), [this] { serve_one(); });
}

void Management::serve_one()
{
    UniqueFd conn(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn)
        return;
    std::string line;
    char buf[4096];
    while (line.find('\n') == std::string::npos && line.size() < 65536) {
        pollfd p{conn.get(), POLLIN, 0};
        if (poll(&p, 1, 1000) <= 0)
            return;  // a client that says nothing gets nothing
        const ssize_t n = recv(conn.get(), buf, sizeof(buf), 0);
        if (n <= 0)
            return;
        line.append(buf, std::size_t(n));
    }
    nlohmann::json reply;
    try {
        reply = handle(nlohmann::json::parse(line.substr(0, line.find('\n'))));
    } catch (const nlohmann::json::exception& e) {
        reply = {{"error", std::string("bad request: ") + e.what()}};
    }
    const std::string text = reply.dump() + "\n";
    (void)send(conn.get(), text.data(), text.size(), MSG_NOSIGNAL);
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

nlohmann::json Management::show_pmd() const
{
    const std::vector<QueuePlacement> placed = scheduler_.placements();
    nlohmann::json list = nlohmann::json::array();
    for (const Pmd* pmd : pmds_) {
        const PmdStats s = pmd->stats();
        list.push_back({{"pmd", pmd->index()}, {"lcore", pmd->lcore()}, {"busy_cycles", s.busy_cycles},
                        {"idle_cycles", s.idle_cycles}, {"iterations", s.iterations}, {"packets", s.packets},
                        {"tsc_hz", s.tsc_hz}, {"longest_iteration_cycles", s.turns.longest},
                        {"iterations_over_1ms", s.turns.longer_than(1e-3)}, {"ports", polled_ports(placed, pmd->index())}});
    }
    return {{"pmds", list}, {"load_window_seconds", Scheduler::kWindowSeconds}, {"port_moves", scheduler_.moves()}};
}

nlohmann::json Management::rebalance()
{
    auto done = scheduler_.rebalance();
    if (!done)
        return {{"error", done.error().detail}};
    nlohmann::json moves = nlohmann::json::array();
    for (const QueueMove& m : done->moves)
        moves.push_back({{"port", m.port}, {"queue", m.queue}, {"from", m.from}, {"to", m.to}});
    return {{"moves", moves}, {"worthwhile", done->plan.worthwhile},
            {"imbalance_before", imbalance(done->plan.current_load)}, {"imbalance_after", imbalance(done->plan.load)},
            {"load_before", done->plan.current_load}, {"load_after", done->plan.load}};
}

nlohmann::json Management::pin(const nlohmann::json& request)
{
    const std::string port = request.value("port", "");
    if (!request.contains("pmd") || request["pmd"].is_null()) {
        auto ok = scheduler_.unpin(port);
        return ok ? nlohmann::json{{"port", port}, {"pinned", false}} : nlohmann::json{{"error", ok.error().detail}};
    }
    if (!request["pmd"].is_number_unsigned())
        return {{"error", "pin: `pmd` must be a PMD index (0, 1, ...) or null to unpin"}};
    auto moved = scheduler_.pin(port, request["pmd"].get<unsigned>());
    if (!moved)
        return {{"error", moved.error().detail}};
    nlohmann::json moves = nlohmann::json::array();
    for (const QueueMove& m : *moved)
        moves.push_back({{"queue", m.queue}, {"from", m.from}, {"to", m.to}});
    // from/to: where queue 0 was and is (every port has it).
    return {{"port", port}, {"pinned", true}, {"from", moved->at(0).from}, {"to", moved->at(0).to}, {"moves", moves}};
}

nlohmann::json Management::handle(const nlohmann::json& request)
{
    const std::string cmd = request.value("cmd", "");
    if (cmd == "show_ports")
        return {{"ports", describe_ports(ports_)}};
    if (cmd == "show_fdb") {
        nlohmann::json list = nlohmann::json::array();
        for (const FdbEntry& e : fdb_.entries())
            list.push_back({{"mac", fmt::format("{:012x}", e.mac)}, {"vlan", e.vlan}, {"port", ports_.at(e.port)->name()}, {"age", e.age_s}});
        return {{"fdb", list}};
    }
    if (cmd == "show_pmd")
        return show_pmd();
    if (cmd == "rebalance")
        return rebalance();
    if (cmd == "pin")
        return pin(request);
    return {{"error", fmt::format("unknown command `{}` (known: show_ports, show_fdb, show_pmd, rebalance, pin)", cmd)}};
}

}  // namespace vusw
