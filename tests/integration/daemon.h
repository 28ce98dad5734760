// Runs vuswitchd as a child process for one test: its own run directory, EAL
// file prefix, metrics port and control socket; readiness wait; clean SIGTERM
// stop with the exit status returned. Also the test's windows into the daemon:
// the control socket JSON, the Prometheus text on /metrics, and /proc counts of
// its fds and mappings (for leak checks).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace vusw::it {

struct DaemonConfig {
  std::vector<std::string> servers;  // --vhost-user <run_dir>/<name>.sock
  std::vector<std::string> clients;  // --vhost-user-client <run_dir>/<name>.sock
  std::vector<std::string> extra_args;
  std::string lcores = "0,1";  // --lcores: control core, then PMD cores
};

// One parsed sample of the Prometheus text format.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

class Metrics {
 public:
  static std::optional<Metrics> parse(const std::string& text);
  // Sum of all samples named `name` whose labels include all of `labels`.
  double sum(const std::string& name, const std::map<std::string, std::string>& labels = {}) const;
  bool has(const std::string& name, const std::map<std::string, std::string>& labels = {}) const;
  const std::vector<Sample>& samples() const { return samples_; }

 private:
  std::vector<Sample> samples_;
};

class Daemon {
 public:
  // Starts the daemon and waits until it is ready; throws with its log on failure.
  explicit Daemon(DaemonConfig cfg);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& run_dir() const { return run_dir_; }
  std::string socket_path(const std::string& port) const { return run_dir_ + "/" + port + ".sock"; }
  std::string control_path() const { return run_dir_ + "/ctl"; }
  uint16_t metrics_port() const { return metrics_port_; }

  bool alive();
  // SIGTERM and wait (10 s, then SIGKILL). Exit code, 128+signal if killed, -1 if not running.
  int stop();
  // stop(), then the same command line again (run directory, control socket, metrics
  // port, state file) and the readiness wait; returns stop()'s exit code. log() shows the
  // new run only (the previous one is moved to daemon.log.before-restart).
  int restart();
  // Everything the daemon wrote to stdout/stderr so far.
  std::string log() const;
  std::string log_tail(size_t lines = 40) const;

  // One request line on the control socket; nullopt if no valid JSON reply.
  std::optional<nlohmann::json> ctl(const nlohmann::json& request) const;
  // The show_ports entry of `name` (null if the daemon or the port is missing).
  nlohmann::json port(const std::string& name) const;
  // GET /metrics over plain HTTP/1.0.
  std::optional<Metrics> scrape() const;

  size_t fd_count() const;
  // Shared or file-backed mappings of the daemon (guest memory, hugepages, files).
  size_t maps_count() const;

 private:
  void spawn(const std::vector<std::string>& args);
  void wait_ready();

  std::string run_dir_;
  std::string log_path_;
  std::string eal_prefix_;  // DPDK --file-prefix of this daemon
  std::vector<std::string> args_;  // its command line, for restart()
  uint16_t metrics_port_ = 0;
  pid_t pid_ = -1;
  bool exited_ = false;   // reaped by alive(); stop() reports exited_status_
  int exited_status_ = 0;
};

// Path of the daemon binary: $VUSWITCHD, else the vuswitchd of this test
// binary's build tree, else build/control/vuswitchd (from the repo root).
std::string daemon_binary();

}  // namespace vusw::it
