// Prometheus exporter: sums the per-core counters on each scrape. The packet path never
// calls prometheus-cpp; it only bumps its own single-writer counters.
#pragma once

#include <sys/socket.h>

#include <memory>
#include <string>
#include <vector>

#include "vusw/port.h"
#include "vusw/result.h"

namespace prometheus {
class Exposer;
}
struct rte_mempool;

namespace vusw {

class Fdb;
class LivePorts;
class Pmd;
class Reclaimer;
class PortsCollector;

class MetricsServer {
public:
    // `ports` changes while the switch runs (ports added and removed): every scrape reads
    // it under its lock.
    MetricsServer(const LivePorts& ports, const Fdb& fdb, const std::vector<Pmd*>& pmds, const Reclaimer& rcu,
                  const rte_mempool& pool);
    ~MetricsServer();
    // Listens on ADDR:PORT.
    Status start(const std::string& address);

private:
    std::shared_ptr<PortsCollector> collector_;
    std::unique_ptr<prometheus::Exposer> exposer_;
    // Where the listener can be reached, to wake it when it stops (see ~MetricsServer).
    sockaddr_storage wake_{};
    socklen_t wake_len_ = 0;
};

}  // namespace vusw
