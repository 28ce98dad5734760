#include "daemon.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "fake_memory.h"

namespace vusw::it {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
namespace fs = std::filesystem;

uint16_t free_tcp_port() {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("no free TCP port");
  return ntohs(a.sin_port);
}

// Reads from fd until EOF, `stop_at` is seen, or timeout.
std::string read_all(int fd, milliseconds timeout, char stop_at = '\0') {
  std::string out;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) break;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (stop_at != '\0' && out.find(stop_at) != std::string::npos) break;
  }
  return out;
}

bool write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::string make_run_dir() {
  std::string tmpl = (fs::temp_directory_path() / "vuswitch-it-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

std::string new_eal_prefix() {
  static int instance = 0;
  return "vuswitch-it-" + std::to_string(::getpid()) + "-" + std::to_string(instance++);
}

// Where DPDK keeps a process's runtime files (EAL's eal_get_runtime_dir()).
std::string eal_runtime_dir(const std::string& prefix) {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  const std::string base = ::getuid() == 0 ? "/var/run" : (xdg != nullptr ? xdg : "/tmp");
  return base + "/dpdk/" + prefix;
}

std::vector<std::string> base_args(const std::string& run_dir, const std::string& prefix, uint16_t metrics_port,
                                   const std::string& lcores) {
  return {daemon_binary(), "--file-prefix", prefix, "--no-huge", "--memory", "256",
          "--lcores", lcores, "--metrics", "127.0.0.1:" + std::to_string(metrics_port),
          "--control", run_dir + "/ctl", "--run-dir", run_dir, "--log-level", "info"};
}

}  // namespace

std::string daemon_binary() {
  const char* env = std::getenv("VUSWITCHD");
  if (env != nullptr && *env != '\0') return env;
  // Same build tree as this test binary: <build>/tests/integration/integration_tests.
  std::error_code ec;
  fs::path sibling = fs::read_symlink("/proc/self/exe", ec).parent_path() / "../../control/vuswitchd";
  if (!ec && fs::exists(sibling)) return sibling.lexically_normal().string();
  return "build/control/vuswitchd";
}

Daemon::Daemon(DaemonConfig cfg)
    : run_dir_(make_run_dir()), log_path_(run_dir_ + "/daemon.log"), eal_prefix_(new_eal_prefix()) {
  metrics_port_ = free_tcp_port();
  std::vector<std::string> args = base_args(run_dir_, eal_prefix_, metrics_port_, cfg.lcores);
  for (const auto& s : cfg.servers) args.insert(args.end(), {"--vhost-user", socket_path(s)});
  for (const auto& c : cfg.clients) args.insert(args.end(), {"--vhost-user-client", socket_path(c)});
  args.insert(args.end(), cfg.extra_args.begin(), cfg.extra_args.end());
  // A smaller pool than the default 16383: creating it is most of a start-up (every
  // buffer's page touched), and the suite starts a daemon more than a hundred times.
  // 8191 leaves room for several NICs' 1024-descriptor RX rings and the cores' caches.
  if (std::find(cfg.extra_args.begin(), cfg.extra_args.end(), "--mbufs") == cfg.extra_args.end())
    args.insert(args.end(), {"--mbufs", "8191"});
  args_ = args;
  spawn(args);
  wait_ready();
}

int Daemon::restart() {
  const int rc = stop();
  exited_ = false;
  exited_status_ = 0;
  std::error_code ec;
  fs::rename(log_path_, log_path_ + ".before-restart", ec);
  spawn(args_);
  wait_ready();
  return rc;
}


Daemon::~Daemon() {
  if (pid_ > 0) {
    int rc = stop();
    if (rc != 0) std::cerr << "vuswitchd exited with " << rc << "\n" << log_tail() << "\n";
  }
  if (std::getenv("VUSWITCH_IT_KEEP") == nullptr) {
    std::error_code ec;
    fs::remove_all(run_dir_, ec);
    fs::remove_all(eal_runtime_dir(eal_prefix_), ec);  // DPDK leaves it behind
  }
}

void Daemon::spawn(const std::vector<std::string>& args) {
  int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error("cannot create " + log_path_);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ == 0) {
    // Never outlive a crashed test run.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    std::fprintf(stderr, "exec %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(log_fd);
  if (pid_ < 0) throw std::runtime_error("fork failed");
}

void Daemon::wait_ready() {
  auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < deadline) {
    if (!alive()) {
      int rc = stop();
      throw std::runtime_error("vuswitchd exited during start-up (" + std::to_string(rc) +
                               "):\n" + log_tail());
    }
    if (log().find("vuswitchd: ready") != std::string::npos) return;
    std::this_thread::sleep_for(milliseconds(20));
  }
  // Readiness by the control socket is good enough if the log line is missing.
  if (ctl({{"cmd", "show_ports"}})) {
    std::cerr << "warning: no 'vuswitchd: ready' line after 20 s, but the control socket answers\n";
    return;
  }
  stop();
  throw std::runtime_error("vuswitchd not ready after 20 s:\n" + log_tail());
}

bool Daemon::alive() {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  // Exited: keep pid_ so stop() can report; store the status by re-raising it later.
  exited_status_ = status;
  exited_ = true;
  return false;
}

int Daemon::stop() {
  if (pid_ <= 0) return -1;
  int status = exited_status_;
  if (!exited_) {
    ::kill(pid_, SIGTERM);
    auto deadline = Clock::now() + std::chrono::seconds(10);
    pid_t r = 0;
    while ((r = ::waitpid(pid_, &status, WNOHANG)) == 0 && Clock::now() < deadline)
      std::this_thread::sleep_for(milliseconds(10));
    if (r == 0) {
      std::cerr << "vuswitchd ignored SIGTERM for 10 s; killing it\n";
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
  }
  pid_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

std::string Daemon::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Daemon::log_tail(size_t lines) const {
  std::string s = log();
  size_t pos = s.size();
  for (size_t n = 0; n <= lines && pos > 0; ++n) {
    size_t p = s.rfind('\n', pos - 1);
    if (p == std::string::npos) return s;
    pos = p;
  }
  return s.substr(pos);
}

std::optional<nlohmann::json> Daemon::ctl(const nlohmann::json& request) const {
  UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::string path = control_path();
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return std::nullopt;
  if (!write_all(s.get(), request.dump() + "\n")) return std::nullopt;
  std::string reply = read_all(s.get(), milliseconds(3000), '\n');
  auto j = nlohmann::json::parse(reply, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

nlohmann::json Daemon::port(const std::string& name) const {
  auto j = ctl({{"cmd", "show_ports"}});
  if (!j || !j->contains("ports") || !(*j)["ports"].is_array()) return nullptr;
  for (const auto& p : (*j)["ports"])
    if (p.value("name", "") == name) return p;
  return nullptr;
}

std::optional<Metrics> Daemon::scrape() const {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(metrics_port_);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return std::nullopt;
  if (!write_all(s.get(), "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")) return std::nullopt;
  std::string resp = read_all(s.get(), milliseconds(5000));
  size_t body = resp.find("\r\n\r\n");
  if (resp.rfind("HTTP/1.", 0) != 0 || resp.find(" 200") > resp.find("\r\n") || body == std::string::npos)
    return std::nullopt;
  return Metrics::parse(resp.substr(body + 4));
}

size_t Daemon::fd_count() const {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid_) + "/fd", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

size_t Daemon::maps_count() const {
  // Shared or file-backed mappings: guest memory (memfd, hugetlbfs), DPDK's hugepages,
  // files. Anonymous private ones are the allocator's: ASan's grows its own metadata
  // (stack depot) as new code paths allocate, which is no leak of the daemon's.
  std::ifstream in("/proc/" + std::to_string(pid_) + "/maps");
  size_t n = 0;
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string range, perms, offset, dev, inode, path;
    fields >> range >> perms >> offset >> dev >> inode >> path;
    n += (perms.size() == 4 && perms[3] == 's') || !path.empty();
  }
  return n;
}

}  // namespace vusw::it

// ---------------------------------------------------------------- Prometheus text

namespace vusw::it {

namespace {

// Parses `k="v",k2="v2"` (with \" \\ \n escapes) starting after '{'; returns the
// position after '}' or npos.
size_t parse_labels(const std::string& line, size_t pos, std::map<std::string, std::string>& out) {
  while (pos < line.size() && line[pos] != '}') {
    size_t eq = line.find('=', pos);
    if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') return std::string::npos;
    std::string key = line.substr(pos, eq - pos);
    std::string val;
    size_t i = eq + 2;
    for (; i < line.size() && line[i] != '"'; ++i) {
      if (line[i] == '\\' && i + 1 < line.size()) {
        ++i;
        val += line[i] == 'n' ? '\n' : line[i];
      } else {
        val += line[i];
      }
    }
    if (i >= line.size()) return std::string::npos;
    out[key] = val;
    pos = i + 1;
    if (pos < line.size() && line[pos] == ',') ++pos;
  }
  return pos < line.size() ? pos + 1 : std::string::npos;
}

std::optional<Sample> parse_sample(const std::string& line) {
  Sample s;
  size_t name_end = line.find_first_of("{ ");
  if (name_end == std::string::npos) return std::nullopt;
  s.name = line.substr(0, name_end);
  size_t pos = name_end;
  if (line[pos] == '{') pos = parse_labels(line, pos + 1, s.labels);
  if (pos == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(pos));
  std::string value;
  rest >> value;
  try {
    s.value = std::stod(value);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return s;
}

bool labels_match(const Sample& s, const std::map<std::string, std::string>& want) {
  for (const auto& [k, v] : want) {
    auto it = s.labels.find(k);
    if (it == s.labels.end() || it->second != v) return false;
  }
  return true;
}

}  // namespace

std::optional<Metrics> Metrics::parse(const std::string& text) {
  Metrics m;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    auto s = parse_sample(line);
    if (!s) return std::nullopt;  // malformed exposition text is a failure in itself
    m.samples_.push_back(std::move(*s));
  }
  return m;
}

double Metrics::sum(const std::string& name, const std::map<std::string, std::string>& labels) const {
  double total = 0;
  for (const auto& s : samples_)
    if (s.name == name && labels_match(s, labels)) total += s.value;
  return total;
}

bool Metrics::has(const std::string& name, const std::map<std::string, std::string>& labels) const {
  for (const auto& s : samples_)
    if (s.name == name && labels_match(s, labels)) return true;
  return false;
}

}  // namespace vusw::it
