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

// Port state, counters and protocol statistics as JSON (shared with tests and the CLI).
nlohmann::json describe_ports(const std::vector<Port*>& ports);

class Management {
public:
    Management(std::string path, EventLoop& loop, const std::vector<Port*>& ports, const Fdb& fdb,
               const std::vector<Pmd*>& pmds);
    ~Management();
    Status start();

private:
    void serve_one();
    nlohmann::json handle(const nlohmann::json& request) const;

    std::string path_;
    EventLoop& loop_;
    const std::vector<Port*>& ports_;
    const Fdb& fdb_;
    const std::vector<Pmd*>& pmds_;
    UniqueFd listen_;
};

}  // namespace vusw
