// vuswitchd: owns every part of a running switch and wires them together.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/config.h"
#include "control/event_loop.h"
#include "control/live_ports.h"
#include "control/port_state.h"
#include "vusw/result.h"

struct rte_mempool;

namespace vusw {

class Fdb;
class L2Switch;
class Management;
class MetricsServer;
class Pmd;
class Port;
class Reclaimer;
class EalDmaRegistry;
class Scheduler;
namespace vhost_user {
class Endpoint;
}

class Daemon {
public:
    // `args`: the command line, read again (with its --config file) by reload().
    Daemon(Config config, std::vector<std::string> args = {});
    ~Daemon();

    // Initialises DPDK, creates ports, starts PMD cores and sockets, and serves until
    // SIGINT/SIGTERM. Returns the process exit code.
    int run();

    // Ports at run time (daemon_ports.cc); control thread. A new port is switched,
    // placed on a core and (vhost-user) listening or connecting when this returns.
    Result<Port*> add_port(PortKind kind, const PortSpec& spec, bool from_config = false);
    // A VXLAN tunnel from vuswitchctl over `underlay` (a NIC opened for it, named by the
    // tunnel's underlay=), or without one over the --nic of the configuration its
    // underlay= names. The underlay must be a virtual device no other port uses.
    Result<Port*> add_tunnel(const PortSpec& spec, std::optional<PortSpec> underlay);
    // The port leaves the switch now: its front-end's session ends (rings stopped, memory
    // unmapped after the grace period and the last lent buffer), its queues leave their
    // cores, its FDB entries and metric series go; it is freed once nothing refers to it.
    Status remove_port(const std::string& name);
    // Reads the command line and its --config file again and applies the ports they
    // name: new ones added, missing or changed ones removed (and re-added), the rest
    // left alone. Ports added with add_port() from vuswitchctl are not the file's (they
    // stay, and stay recorded in the state file).
    Result<ReloadReport> reload();

private:
    // A port and what belongs to it while it is live.
    struct Attached {
        std::unique_ptr<Port> port;
        std::unique_ptr<vhost_user::Endpoint> endpoint;  // vhost-user ports
        PortKind kind;
        PortSpec spec;
        bool from_config;  // start-up or reload: a reload may remove it
        std::optional<PortSpec> underlay = {};  // a tunnel's underlay NIC (as it was opened)
    };
    // A removed port waiting until no core can reach it and no lent buffer refers to it.
    struct Retiring {
        std::unique_ptr<Port> port;
        std::weak_ptr<const void> grace;  // expires once every core passed a quiescent state
        bool flushed = false;             // hand-off rings emptied, FDB entries gone, id free
        std::chrono::steady_clock::time_point since;
        bool warned = false;
        bool holds_device = false;  // a NIC or tunnel: its ethdev is closed when it is freed
    };

    // Hugepage check, DPDK, ports, PMD cores, sockets, then --user: all of start-up.
    Status start_up();
    Status init_dpdk();
    Status create_ports();
    void place_ports();
    Status start_serving();
    // The ports of the state file, added again through the control socket's add_port;
    // one that cannot be is logged and left out.
    void restore_ports();
    Status start_endpoint(Attached& a);
    // The vhost-user server sockets, the control socket and the state file (chowned by
    // drop_privileges).
    std::vector<std::string> owned_files() const;
    // `underlay`: a tunnel's NIC (nullptr: the configuration's --nic its underlay= names).
    Result<std::unique_ptr<Port>> make_port(PortKind kind, const PortSpec& spec, const PortSpec* underlay = nullptr) const;
    // add_port() and add_tunnel(): the port made, switched, placed and started.
    Result<Port*> attach(PortKind kind, const PortSpec& spec, bool from_config, std::optional<PortSpec> underlay);
    // Name, socket path and device are free; no PCI NIC at run time.
    Status check_new_port(PortKind kind, const PortSpec& spec, const std::optional<PortSpec>& underlay) const;
    Result<std::unique_ptr<Port>> make_tunnel(const PortSpec& spec, const PortSpec& underlay) const;
    // The underlay NIC of the tunnel `spec` of the configuration, or an error.
    Result<PortSpec> configured_underlay(const PortSpec& spec) const;
    // The live port that has the NIC `nic`'s device (as a NIC port or a tunnel's underlay), if any.
    const Port* device_user(const PortSpec& nic) const;
    void tick();
    // The clock learned MACs are stamped with (seconds), for the FDB and every tunnel's
    // inner MACs; tick_mac_tables() advances it, once a second, and forgets the MACs
    // unseen for --mac-age.
    static uint32_t mac_clock_s();
    void tick_mac_tables();
    void log_broken_queues();
    void retire_ports();
    // Waits (bounded) until removed NICs and tunnels have closed their ethdevs, so that the
    // same device can be opened again at once (reload of a changed --nic).
    void finish_retiring_devices();
    void on_signal();
    // "PREFIX NAME (KIND) on PMD n, access VLAN 0, MTU 1500 (default)".
    void log_port(const Port& port, std::string_view prefix) const;

    Config config_;
    EventLoop loop_;
    rte_mempool* pool_ = nullptr;
    std::unique_ptr<Reclaimer> reclaimer_;
    std::unique_ptr<EalDmaRegistry> dma_;  // outlives every guest memory region
    std::unique_ptr<Fdb> fdb_;
    std::unique_ptr<L2Switch> l2_;
    std::vector<std::string> args_;
    PortState state_;  // the ports added at run time (add_port), and their file
    std::vector<Attached> attached_;   // live ports, in the order they were added
    std::vector<Retiring> retiring_;
    // The live ports (of attached_), for the scheduler, management and metrics.
    LivePorts ports_;
    std::vector<std::unique_ptr<Pmd>> owned_pmds_;
    std::vector<Pmd*> pmds_;
    std::unique_ptr<Scheduler> scheduler_;
    std::unique_ptr<Management> management_;
    std::unique_ptr<MetricsServer> metrics_;
    UniqueFd signals_;
    std::chrono::steady_clock::time_point next_second_{};
    std::vector<std::vector<uint8_t>> logged_faults_;  // by port id
};

}  // namespace vusw
