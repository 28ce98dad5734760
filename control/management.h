// The management socket vuswitchctl talks to: one JSON request line, one JSON reply line.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/event_loop.h"
#include "vusw/port.h"
#include "vusw/result.h"

namespace vusw {

class Fdb;
class Pmd;
class Scheduler;

// Port state, counters and protocol statistics as JSON (shared with tests and the CLI).
nlohmann::json describe_ports(const std::vector<Port*>& ports);

class Management {
public:
    Management(std::string path, EventLoop& loop, const std::vector<Port*>& ports, const Fdb& fdb,
               const std::vector<Pmd*>& pmds, Scheduler& scheduler);
    ~Management();
    Status start();

private:
    void serve_one();
    nlohmann::json handle(const nlohmann::json& request);
    nlohmann::json show_pmd() const;
    nlohmann::json rebalance();
    nlohmann::json pin(const nlohmann::json& request);

    std::string path_;
    EventLoop& loop_;
    const std::vector<Port*>& ports_;
    const Fdb& fdb_;
    const std::vector<Pmd*>& pmds_;
    Scheduler& scheduler_;
    UniqueFd listen_;
};

}  // namespace vusw
