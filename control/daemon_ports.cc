// Ports at run time: added, removed and reloaded while the cores switch.
//
// Removing a port, in order (each step makes the next one safe):
//  1. its endpoint goes: the front-end's session ends, its rings stop on their cores and
//     its memory table is retired (unmapped after the grace period and the last lent buffer);
//  2. the switch publishes a port table without it: no burst that starts later sends to it;
//  3. its queues leave their cores (each core acknowledges): nothing polls it any more,
//     so nothing learns its id; frames other cores still send wait in its hand-off rings;
//  4. after a grace period (no core holds the old table): the hand-off rings are emptied,
//     its FDB entries flushed and its id freed;
//  5. once no buffer it lent (zero copy) is out, the port object is freed.
#include <rte_ethdev.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "control/daemon.h"
#include "control/management.h"
#include "control/metrics.h"
#include "control/scheduler.h"
#include "control/vhost_user/endpoint.h"
#include "control/vxlan_config.h"
#include "ports/ethdev_port.h"
#include "ports/vhost_port.h"
#include "ports/vxlan_port.h"
#include "vusw/fdb.h"
#include "vusw/l2switch.h"
#include "vusw/log.h"
#include "vusw/pmd.h"
#include "vusw/rcu.h"

namespace vusw {
namespace {

// A removed port still waiting this long for its lent buffers is worth a warning.
constexpr auto kSlowRetire = std::chrono::seconds(5);
// How long adding a NIC waits for a removed one to close its device (a grace period: the
// cores pass quiescent states every burst, so this is microseconds unless one is stuck).
constexpr auto kDeviceRetireWait = std::chrono::seconds(2);

// "access VLAN 10, MTU 1500 (default)": VLAN membership and MTU as the port starts.
std::string describe_settings(const Port& port)
{
    const PortConfig& p = port.config();
    const std::string mtu = fmt::format("MTU {} ({})", port.mtu(), mtu_source_name(port.effective_mtu().source));
    if (p.vlan_mode == VlanMode::access)
        return fmt::format("access VLAN {}, {}", p.vlan, mtu);
    return fmt::format("trunk of VLANs {} (native VLAN {} untagged), {}", p.trunks.to_string(), p.vlan, mtu);
}

}  // namespace

void Daemon::log_port(const Port& port, std::string_view prefix) const
{
    log(LogLevel::info, "{} {} ({}) on PMD {}{}, {}", prefix, port.name(), port.kind(), scheduler_->pmd_index(port),
        scheduler_->pinned(port) ? " (pinned)" : "", describe_settings(port));
}

Result<PortSpec> Daemon::configured_underlay(const PortSpec& spec) const
{
    auto settings = parse_vxlan(spec.target);
    if (!settings)
        return std::unexpected(settings.error());
    const PortSpec* nic = underlay_of(config_, settings->underlay);
    if (nic == nullptr)
        return fail("config", fmt::format("--vxlan {}: underlay={} names no --nic port of the configuration; give the "
                                          "underlay NIC's DEVARGS with it (add_port's `underlay`)",
                                          spec.target, settings->underlay));
    return *nic;
}

// The tunnel opens its underlay NIC itself: the NIC is part of it, not a switch port.
Result<std::unique_ptr<Port>> Daemon::make_tunnel(const PortSpec& spec, const PortSpec& nic) const
{
    auto settings = parse_vxlan(spec.target);
    if (!settings)
        return std::unexpected(settings.error());
    auto underlay = EthdevPort::open(nic.target, nic.name, nic.settings.mtu, pool_);
    if (!underlay)
        return std::unexpected(underlay.error());
    const PortConfig config = tunnel_port_config(spec, *settings, nic);
    auto tunnel = VxlanPort::open(spec.name, std::move(*settings), std::move(*underlay));
    if (!tunnel)
        return std::unexpected(tunnel.error());
    (*tunnel)->set_config(config);
    (*tunnel)->tick_inner_macs(mac_clock_s());  // what it learns before the next tick is not old
    return std::unique_ptr<Port>(std::move(*tunnel));
}

Result<std::unique_ptr<Port>> Daemon::make_port(PortKind kind, const PortSpec& spec, const PortSpec* underlay) const
{
    if (kind == PortKind::vxlan) {
        if (underlay != nullptr)
            return make_tunnel(spec, *underlay);
        auto nic = configured_underlay(spec);
        return nic ? make_tunnel(spec, *nic) : std::unexpected(nic.error());
    }
    std::unique_ptr<Port> port;
    if (kind == PortKind::nic) {
        auto nic = EthdevPort::open(spec.target, spec.name, spec.settings.mtu, pool_);
        if (!nic)
            return std::unexpected(nic.error());
        port = std::move(*nic);
    } else {
        try {
            port = std::make_unique<VhostPort>(spec.name, spec.target, kind == PortKind::vhost_client);
        } catch (const std::exception& e) {  // its rings could not be made (DPDK memory)
            return fail("no_memory", fmt::format("port {}: {}", spec.name, e.what()));
        }
    }
    port->set_config(spec.settings);
    return port;
}

Status Daemon::start_endpoint(Attached& a)
{
    auto* vhost = dynamic_cast<VhostPort*>(a.port.get());
    if (vhost == nullptr)
        return {};
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(vhost->path()).parent_path(), ec);
    vhost_user::SessionEnv env{[this, vhost](uint16_t pair) { return scheduler_->place_queue(*vhost, pair); },
                               [this, vhost](uint16_t pair) { return scheduler_->pmd_of(*vhost, pair); },
                               *reclaimer_, *l2_, pool_, !config_.debug_no_dirty_log,
                               config_.debug_dirty_log_always};
    a.endpoint = std::make_unique<vhost_user::Endpoint>(*vhost, env, loop_, config_.socket_access);
    return a.endpoint->start();
}

namespace {

// The DPDK device of a NIC's devargs: "net_af_packet0" of "net_af_packet0,iface=veth0".
std::string device_name(const std::string& devargs)
{
    return devargs.substr(0, devargs.find(','));
}

}  // namespace

const Port* Daemon::device_user(const PortSpec& nic) const
{
    for (const Attached& a : attached_) {
        const std::optional<PortSpec>& has = a.kind == PortKind::nic ? std::optional(a.spec) : a.underlay;
        if (has && device_name(has->target) == device_name(nic.target))
            return a.port.get();
    }
    return nullptr;
}

Result<Port*> Daemon::add_tunnel(const PortSpec& spec, std::optional<PortSpec> underlay)
{
    auto settings = parse_vxlan(spec.target);
    if (!settings)
        return std::unexpected(settings.error());
    if (underlay) {
        underlay->name = settings->underlay;  // the NIC is known by the name the tunnel gives it
    } else {
        auto configured = configured_underlay(spec);
        if (!configured)
            return std::unexpected(configured.error());
        underlay = std::move(*configured);
    }
    Config alone;  // the tunnel's own checks of the command line: VLAN options, MTU room
    alone.nics = {*underlay};
    alone.vxlans = {spec};
    if (auto ok = check_vxlans(alone); !ok)
        return std::unexpected(ok.error());
    return attach(PortKind::vxlan, spec, false, std::move(underlay));
}

Result<Port*> Daemon::add_port(PortKind kind, const PortSpec& spec, bool from_config)
{
    if (kind != PortKind::vxlan)
        return attach(kind, spec, from_config, std::nullopt);
    auto underlay = configured_underlay(spec);
    if (!underlay)
        return std::unexpected(underlay.error());
    return attach(kind, spec, from_config, std::move(*underlay));
}

Status Daemon::check_new_port(PortKind kind, const PortSpec& spec, const std::optional<PortSpec>& underlay) const
{
    for (const Attached& a : attached_) {
        if (a.port->name() == spec.name)
            return fail("exists", fmt::format("a port named {} exists; delete it first or pick another name (name=)", spec.name));
        if (kind != PortKind::nic && kind != PortKind::vxlan && a.kind != PortKind::nic && a.kind != PortKind::vxlan &&
            a.spec.target == spec.target)
            return fail("exists", fmt::format("port {} uses the socket {} already", a.port->name(), spec.target));
    }
    const PortSpec* device = underlay ? &*underlay : kind == PortKind::nic ? &spec : nullptr;
    if (device != nullptr && looks_like_pci(device->target))
        return fail("unsupported", fmt::format("{}: PCI NICs are given at start-up (--nic): guest memory mapped "
                                               "before them is not DMA-mapped for them; restart vuswitchd with it",
                                               device->target));
    if (const Port* user = device != nullptr ? device_user(*device) : nullptr)
        return fail("exists", fmt::format("{} ({}): port {} uses this device already{}; del-port it first or give "
                                          "another device", device->name, device->target, user->name(),
                                          underlay ? " (one tunnel per underlay NIC)" : ""));
    return {};
}

Result<Port*> Daemon::attach(PortKind kind, const PortSpec& spec, bool from_config, std::optional<PortSpec> underlay)
{
    if (auto ok = check_new_port(kind, spec, underlay); !ok)
        return std::unexpected(ok.error());
    if (kind == PortKind::nic || kind == PortKind::vxlan)
        finish_retiring_devices();
    auto made = make_port(kind, spec, underlay ? &*underlay : nullptr);
    if (!made && kind != PortKind::vhost_server && kind != PortKind::vhost_client && config_.user)
        return fail(made.error().reason, fmt::format("{} (vuswitchd runs as user {} without capabilities (--user): a NIC "
                                                     "that needs them, e.g. net_af_packet or net_tap, is given at "
                                                     "start-up with --nic)", made.error().detail, config_.user->name));
    if (!made)
        return std::unexpected(made.error());
    Port& port = **made;
    if (auto ok = l2_->add_port(port); !ok)
        return std::unexpected(ok.error());
    ports_.add(&port);
    logged_faults_[port.id()].clear();
    attached_.push_back(Attached{std::move(*made), nullptr, kind, spec, from_config, std::move(underlay)});
    if (auto placed = scheduler_->add_port(port, int(pin_of(config_, spec.name).value_or(unsigned(kUnassigned)))); !placed) {
        (void)remove_port(spec.name);
        return std::unexpected(placed.error());
    }
    if (auto ok = start_endpoint(attached_.back()); !ok) {
        (void)remove_port(spec.name);
        return std::unexpected(ok.error());
    }
    log_port(port, "added port");
    return &port;
}

namespace {

// Why a recorded port was not added again, and what to do about it.
std::string restore_failure(const RecordedPort& p, const nlohmann::json& error, bool name_is_configured)
{
    const std::string why = name_is_configured
                                ? "a configured port (command line or --config) has its name now; the configured one stays"
                                : fmt::format("{}: {}", error.value("code", "?"), error.value("message", error.dump()));
    return fmt::format("port {} (added at run time) not restored: {}. It is no longer recorded: if it is still needed, "
                       "add it again (vuswitchctl add-port{}) once that is fixed. Its add_port request was {}",
                       p.name, why, name_is_configured ? " ... --name ANOTHER" : "",
                       p.request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace

void Daemon::restore_ports()
{
    auto recorded = state_.take();
    if (!recorded) {
        log(LogLevel::error, "{}", recorded.error().detail);
        return;
    }
    std::size_t restored = 0;
    state_.hold();  // one write at the end, not one per port
    for (const RecordedPort& p : *recorded) {
        const nlohmann::json reply = management_->handle(p.request);  // as the control socket adds it
        if (!reply.contains("error")) {
            ++restored;
            continue;
        }
        const bool configured = std::any_of(attached_.begin(), attached_.end(), [&](const Attached& a) {
            return a.from_config && a.port->name() == p.name;
        });
        log(LogLevel::warn, "{}", restore_failure(p, reply["error"], configured));
    }
    if (auto ok = state_.release(); !ok)  // without the ports left out
        log(LogLevel::error, "{}; ports added at run time will not come back after the next restart", ok.error().detail);
    if (!recorded->empty())
        log(LogLevel::info, "state file {}: {} of {} ports added at run time restored", state_.path(), restored,
            recorded->size());
}

Status Daemon::remove_port(const std::string& name)
{
    const auto it = std::find_if(attached_.begin(), attached_.end(), [&](const Attached& a) { return a.port->name() == name; });
    if (it == attached_.end())
        return fail("no_port", fmt::format("no port named `{}`", name));
    Port& port = *it->port;
    it->endpoint.reset();  // 1. the session ends, the socket goes
    l2_->remove_port(port);  // 2.
    ports_.remove(&port);
    Status detached = scheduler_->remove_port(port);  // 3.
    auto token = std::make_shared<int>(0);
    reclaimer_->retire(token);
    const bool device = it->kind == PortKind::nic || it->kind == PortKind::vxlan;
    retiring_.push_back(Retiring{std::move(it->port), token, false, std::chrono::steady_clock::now(), false, device});
    attached_.erase(it);
    log(LogLevel::info, "removed port {}", name);
    return detached;
}

void Daemon::retire_ports()
{
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(retiring_, [&](Retiring& r) {
        if (!r.flushed) {
            if (!r.grace.expired())
                return false;
            r.port->drop_handoffs();  // 4.
            fdb_->flush_port(r.port->id());
            l2_->release_id(r.port->id());
            r.flushed = true;
        }
        if (r.port->settle())  // 5.
            return true;
        if (!r.warned && now - r.since > kSlowRetire) {
            log(LogLevel::warn, "removed port {}: buffers it lent are still held by other ports; it is freed when they "
                                "come back", r.port->name());
            r.warned = true;
        }
        return false;
    });
}

void Daemon::finish_retiring_devices()
{
    const auto holds_device = [](const Retiring& r) { return r.holds_device; };
    const auto deadline = std::chrono::steady_clock::now() + kDeviceRetireWait;
    while (std::any_of(retiring_.begin(), retiring_.end(), holds_device) && std::chrono::steady_clock::now() < deadline) {
        reclaimer_->poll();
        retire_ports();
        if (std::any_of(retiring_.begin(), retiring_.end(), holds_device))
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

Result<ReloadReport> Daemon::reload()
{
    std::vector<const char*> argv;
    for (const std::string& a : args_)
        argv.push_back(a.c_str());
    auto parsed = parse_args(int(argv.size()), argv.data());
    if (!parsed)
        return std::unexpected(parsed.error());
    if (!parsed->print.empty())
        return fail("config", "the command line asks for --help or --version, not a configuration");
    const Config& next = parsed->config;
    ReloadReport report;
    // Options other than ports (and --mac-age, read at every aging tick) apply at start-up only.
    nlohmann::json before = describe_config(config_), after = describe_config(next);
    for (auto& [key, value] : after.items())
        if (key != "ports" && key != "pins" && key != "embedded_default_ports" && key != "log_level" && key != "mac_age" &&
            before.value(key, nlohmann::json()) != value)
            report.ignored.push_back(key);
    const auto wanted = port_specs(next);
    auto wanted_as = [&](const Attached& a) {
        return std::any_of(wanted.begin(), wanted.end(), [&](const auto& w) {
            return w.first == a.kind && same_port(w.second, a.spec);
        });
    };
    std::vector<std::string> gone;
    for (const Attached& a : attached_)
        if (a.from_config && !wanted_as(a))
            gone.push_back(a.port->name());
    for (const std::string& name : gone) {
        if (auto ok = remove_port(name); !ok)
            report.failed.push_back(fmt::format("{}: {}", name, ok.error().detail));
        report.removed.push_back(name);
    }
    config_.nics = next.nics;
    config_.vxlans = next.vxlans;
    config_.vhost_server = next.vhost_server;
    config_.vhost_client = next.vhost_client;
    config_.pins = next.pins;
    config_.mac_age_s = next.mac_age_s;  // read at every aging tick
    config_.used_default_ports = next.used_default_ports;
    for (const auto& [kind, spec] : wanted) {
        const auto have = std::find_if(attached_.begin(), attached_.end(),
                                       [&](const Attached& a) { return a.port->name() == spec.name; });
        if (have != attached_.end()) {
            if (have->from_config)
                report.kept.push_back(spec.name);
            else
                report.failed.push_back(fmt::format("{}: a port added with vuswitchctl has this name; del-port it first",
                                                    spec.name));
            continue;
        }
        if (auto added = add_port(kind, spec, true); added)
            report.added.push_back(spec.name);
        else
            report.failed.push_back(fmt::format("{}: {}", spec.name, added.error().detail));
    }
    log(LogLevel::info, "reload: {} port{} added, {} removed, {} kept{}{}", report.added.size(),
        report.added.size() == 1 ? "" : "s", report.removed.size(), report.kept.size(),
        report.failed.empty() ? "" : fmt::format("; failed: {}", fmt::join(report.failed, "; ")),
        report.ignored.empty() ? "" : fmt::format("; changed options that need a restart: {}", fmt::join(report.ignored, ", ")));
    return report;
}

}  // namespace vusw
