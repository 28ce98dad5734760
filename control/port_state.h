// The state file: the ports added at run time (add_port), kept across a restart of
// vuswitchd.
//
// Each port is recorded as the add_port request that made it, so that start-up adds it
// again through the very path the control socket uses (Management::handle), and a new
// add_port field is kept without a change here. The default file is RUN_DIR/ports.json:
// /run is tmpfs, so the ports outlive a daemon restart (systemctl restart, a DaemonSet
// update) but not a reboot, after which kubelet adds the pods' ports again.
//
//   {"version":1,"ports":[{"name":"vm1","request":{"cmd":"add_port","type":"vhost-user",
//                                                  "target":"/run/vuswitch/vm1.sock"}}]}
//
// Written whole on every change: a temporary file in the same directory, fsync, rename
// (a crash leaves the old file or the new one, never half of one), mode 0600.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vusw/result.h"

namespace vusw {

// The format written; a file with a higher version is a newer vuswitchd's and is not read.
inline constexpr unsigned kPortStateVersion = 1;

// One port added at run time: its name (as show ports gives it) and its add_port request.
struct RecordedPort {
    std::string name;
    nlohmann::json request;
    bool operator==(const RecordedPort&) const = default;
};

// The file's text for `ports` (one line, with its newline).
std::string serialise_port_state(const std::vector<RecordedPort>& ports);
// The ports of a state file's text; an error says what is wrong (not JSON, another
// version, an entry that is not a recorded add_port).
Result<std::vector<RecordedPort>> parse_port_state(std::string_view text);

// The ports added at run time, in the order they were added, and their file.
class PortState {
public:
    // `path`: the state file; "" keeps the list in memory only (--state-file none).
    explicit PortState(std::string path);

    const std::string& path() const { return path_; }
    // Reads the file once at start-up: its ports, to be added again (each is recorded again
    // as its add_port succeeds; the list starts empty). No file: none. A file that cannot
    // be read is renamed to PATH.bad, not overwritten later, and the error says so.
    Result<std::vector<RecordedPort>> take();
    // Port `name` was made by `request`: recorded and the file written.
    Status record(const std::string& name, const nlohmann::json& request);
    // Port `name` is gone: forgotten (if it was recorded) and the file written.
    Status forget(const std::string& name);
    bool recorded(const std::string& name) const;
    // Writes the list to the file now (nothing without a file).
    Status save() const;
    // While held (start-up adding the recorded ports again), record and forget change the
    // list only; release() writes it once.
    void hold() { held_ = true; }
    Status release()
    {
        held_ = false;
        return save();
    }

private:
    std::string path_;
    std::vector<RecordedPort> ports_;
    bool held_ = false;
};

// Port `name` forgotten in the state file at `path` while no vuswitchd runs (the CNI
// plugin's DEL): it is not added again at the next start. No file, or no such port in it:
// nothing to do. A file that cannot be read is left as it is, and the error says why.
Status forget_recorded_port(const std::string& path, const std::string& name);

}  // namespace vusw
