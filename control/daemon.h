// vuswitchd: owns every part of a running switch and wires them together.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "control/config.h"
#include "control/event_loop.h"
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
    explicit Daemon(Config config);
    ~Daemon();

    // Initialises DPDK, creates ports, starts PMD cores and sockets, and serves until
    // SIGINT/SIGTERM. Returns the process exit code.
    int run();

private:
    Status init_dpdk();
    Status create_ports();
    void place_ports();
    Status start_serving();
    void tick();
    void tick_fdb_clock();
    void log_broken_queues();

    Config config_;
    EventLoop loop_;
    rte_mempool* pool_ = nullptr;
    std::unique_ptr<Reclaimer> reclaimer_;
    std::unique_ptr<EalDmaRegistry> dma_;  // outlives every guest memory region
    std::unique_ptr<Fdb> fdb_;
    std::unique_ptr<L2Switch> l2_;
    std::vector<std::unique_ptr<Port>> owned_ports_;
    std::vector<Port*> ports_;
    std::vector<std::unique_ptr<Pmd>> owned_pmds_;
    std::vector<Pmd*> pmds_;
    std::unique_ptr<Scheduler> scheduler_;
    std::vector<std::unique_ptr<vhost_user::Endpoint>> endpoints_;
    std::unique_ptr<Management> management_;
    std::unique_ptr<MetricsServer> metrics_;
    UniqueFd signals_;
    std::chrono::steady_clock::time_point next_second_{};
    std::vector<std::vector<uint8_t>> logged_faults_;
};

}  // namespace vusw
