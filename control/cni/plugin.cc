// ADD, DEL, CHECK and VERSION of vuswitch-cni, as the CNI 1.0 spec defines them:
//   ADD    add_port (vhost-user server socket in socketDir) unless the pod's port is
//          already there with that socket (a repeated ADD gives the same result);
//   DEL    del_port; a port or socket that is gone is success (spec: DEL must tolerate
//          missing resources, or kubelet retries it forever). With no daemon running
//          (nothing listens on the control socket) the port is removed from its state
//          file instead, so that it does not come back when vuswitchd starts; a daemon
//          that runs but does not answer is try-again-later;
//   CHECK  the port exists with the expected socket, and the socket file is there.
#include "control/cni/plugin.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "control/control_client.h"
#include "control/port_state.h"
#include "vusw/unique_fd.h"

namespace vusw::cni {

namespace {

// A reply of vuswitchd: its fields, or its error object {"code","message"}.
struct Reply {
    nlohmann::json body;
    bool ok() const { return !body.contains("error"); }
    std::string code() const { return ok() ? "" : body["error"].value("code", ""); }
    std::string message() const { return ok() ? "" : body["error"].value("message", body["error"].dump()); }
};

// One request to vuswitchd. Unreachable or silent: try_again_later (kubelet retries).
std::expected<Reply, CniError> call(const NetConf& conf, const nlohmann::json& request)
{
    const auto line = ask(conf.control_socket, request.dump());
    auto reply = line ? parse_reply(conf.control_socket, *line) : std::unexpected(line.error());
    if (reply)
        return Reply{std::move(*reply)};
    return cni_error(Code::try_again_later,
                 fmt::format("vuswitchd is not reachable at {} (\"controlSocket\"): start it (on Kubernetes: the "
                             "vuswitchd DaemonSet pod on this node) or fix \"controlSocket\"; then retry",
                             conf.control_socket),
                 reply.error().detail);
}

// Whether vuswitchd has the pod's port: false if not, true if it has it with the pod's
// socket, port_conflict if the name belongs to something else.
std::expected<bool, CniError> has_pod_port(const NetConf& conf, const Env& env)
{
    auto shown = call(conf, {{"cmd", "show_port"}, {"port", port_name(env)}});
    if (!shown)
        return std::unexpected(shown.error());
    if (!shown->ok())
        return false;
    const nlohmann::json& port = shown->body.value("port", nlohmann::json::object());
    const std::string want = host_socket_path(conf, env);
    if (port.value("type", "") == "vhost-user" && port.value("path", "") == want)
        return true;
    return cni_error(Code::port_conflict,
                 fmt::format("vuswitchd already has a port named {} that is not this pod's vhost-user socket {}: "
                             "remove it (vuswitchctl del-port {}) or use another CNI_IFNAME",
                             port_name(env), want, port_name(env)),
                 port.dump());
}

std::expected<void, CniError> make_socket_dir(const NetConf& conf)
{
    std::error_code ec;
    std::filesystem::create_directories(conf.socket_dir, ec);
    if (ec)
        return cni_error(Code::io_failure,
                     fmt::format("cannot create \"socketDir\" {}: {}: check the path and that it is writable on the host",
                                 conf.socket_dir, ec.message()));
    return {};
}

// device-info-spec 4.2: Multus names the file; we create its directory if needed.
std::expected<void, CniError> write_device_info(const NetConf& conf, const Env& env)
{
    if (conf.device_info_file.empty())
        return {};
    const std::filesystem::path file(conf.device_info_file);
    std::error_code ec;
    std::filesystem::create_directories(file.parent_path(), ec);
    std::ofstream out(file, std::ios::trunc);
    out << device_info(conf, env).dump() << '\n';
    out.close();
    if (ec || !out)
        return cni_error(Code::io_failure, fmt::format("cannot write the device-info file {} (runtimeConfig "
                                                   "\"CNIDeviceInfoFile\"): {}",
                                                   conf.device_info_file, ec ? ec.message() : strerror(errno)));
    return {};
}

std::expected<void, CniError> create_port(const NetConf& conf, const Env& env)
{
    if (auto dir = make_socket_dir(conf); !dir)
        return dir;
    auto added = call(conf, add_port_request(conf, env));
    if (!added)
        return std::unexpected(added.error());
    if (added->ok())
        return {};
    if (added->code() == "port_exists") {  // a concurrent ADD of the same pod made it meanwhile
        auto ours = has_pod_port(conf, env);
        if (!ours)
            return std::unexpected(ours.error());
        if (*ours)
            return {};
    }
    return cni_error(added->code() == "bad_argument" ? Code::invalid_config : Code::daemon_refused,
                 fmt::format("vuswitchd refused the port {}: {}", port_name(env), added->message()), added->code());
}

std::expected<nlohmann::json, CniError> add(const NetConf& conf, const Env& env)
{
    struct stat st {};
    if (stat(env.netns.c_str(), &st) != 0)
        return cni_error(Code::invalid_env, fmt::format("CNI_NETNS={}: {}: the sandbox's network namespace must exist",
                                                    env.netns, strerror(errno)));
    auto ours = has_pod_port(conf, env);
    if (!ours)
        return std::unexpected(ours.error());
    auto done = *ours ? std::expected<void, CniError>{} : create_port(conf, env);
    if (done)
        done = write_device_info(conf, env);
    if (!done)
        return std::unexpected(done.error());
    return add_result(conf, env);
}

// Removes the socket file if it is (still) a socket: a daemon that died leaves it.
void remove_stale_socket(const std::string& path)
{
    struct stat st {};
    if (lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path.c_str());
}

// Whether no vuswitchd listens on `control_socket` (no socket file, or nobody accepting
// on it): only then may the plugin edit the state file, which a running daemon rewrites
// from memory.
bool no_daemon_at(const std::string& control_socket)
{
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (control_socket.size() >= sizeof addr.sun_path)
        return false;
    std::memcpy(addr.sun_path, control_socket.c_str(), control_socket.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0)
        return false;
    return errno == ENOENT || errno == ECONNREFUSED;
}

std::expected<nlohmann::json, CniError> del(const NetConf& conf, const Env& env)
{
    auto reply = call(conf, {{"cmd", "del_port"}, {"port", port_name(env)}});
    if (!reply && no_daemon_at(conf.control_socket)) {  // stopped, or gone from the node for good
        if (auto forgot = forget_recorded_port(conf.state_file, port_name(env)); !forgot)
            return cni_error(Code::try_again_later,
                             fmt::format("vuswitchd is not running and port {} could not be removed from its state "
                                         "file {} (\"stateFile\"), so it would come back when vuswitchd starts: fix "
                                         "or remove the file, or start vuswitchd; then retry",
                                         port_name(env), conf.state_file),
                             forgot.error().detail);
        remove_stale_socket(host_socket_path(conf, env));
        return nlohmann::json();
    }
    if (!reply) {  // a daemon that does not answer: kubelet retries
        CniError e = reply.error();
        e.msg += fmt::format(" (port {} is removed once it answers)", port_name(env));
        return std::unexpected(std::move(e));
    }
    if (!reply->ok() && reply->code() != "no_such_port")
        return cni_error(Code::daemon_refused, fmt::format("vuswitchd did not remove port {}: {}", port_name(env),
                                                       reply->message()),
                     reply->code());
    remove_stale_socket(host_socket_path(conf, env));
    return nlohmann::json();
}

std::expected<nlohmann::json, CniError> check(const NetConf& conf, const Env& env)
{
    auto ours = has_pod_port(conf, env);
    if (!ours)
        return std::unexpected(ours.error());
    const std::string path = host_socket_path(conf, env);
    if (!*ours)
        return cni_error(Code::port_missing, fmt::format("vuswitchd has no port {} for this pod: delete and re-create the "
                                                     "pod (kubelet calls ADD again)",
                                                     port_name(env)));
    struct stat st {};
    if (stat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode))
        return cni_error(Code::port_missing, fmt::format("the vhost-user socket {} of port {} is missing: delete and "
                                                     "re-create the pod",
                                                     path, port_name(env)));
    return nlohmann::json();
}

}  // namespace

std::expected<nlohmann::json, CniError> run(const Env& env, std::string_view config)
{
    if (env.command == Command::version)  // whatever stdin holds: a runtime probing us needs the answer
        return version_result();
    auto conf = parse_config(config);
    if (!conf)
        return std::unexpected(conf.error());
    switch (env.command) {
    case Command::add:
        return add(*conf, env);
    case Command::del:
        return del(*conf, env);
    case Command::check:
        return check(*conf, env);
    case Command::version:
        break;
    }
    return version_result();
}

}  // namespace vusw::cni
