// The pure parts of vuswitch-cni; see spec.h.
#include "control/cni/spec.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <utility>

#include <fmt/format.h>

namespace vusw::cni {

namespace {

bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// The characters the spec allows in a container id after its first; all of them are
// also allowed in a vuswitch port name (and an interface name needs no more).
bool is_id_char(char c)
{
    return is_alnum(c) || c == '_' || c == '.' || c == '-';
}

// CNI 1.0, "Parameters": CNI_CONTAINERID starts alphanumeric, then alphanumerics, _ . -
bool valid_container_id(std::string_view id)
{
    return !id.empty() && is_alnum(id[0]) && std::all_of(id.begin(), id.end(), is_id_char);
}

// An interface name: at most 15 bytes (IFNAMSIZ - 1), not "." or ".."; the spec also
// forbids / : and white space; vuswitch's port names take only A-Z a-z 0-9 . _ - of it.
bool valid_ifname(std::string_view name)
{
    return !name.empty() && name.size() <= 15 && name != "." && name != ".." &&
           std::all_of(name.begin(), name.end(), is_id_char);
}

// KEY=VALUE pairs separated by ';' (kubelet: IgnoreUnknown=1;K8S_POD_NAMESPACE=...).
bool valid_cni_args(std::string_view args)
{
    while (!args.empty()) {
        const std::string_view item = args.substr(0, args.find(';'));
        if (item.find('=') == std::string_view::npos || item.front() == '=')
            return false;
        args.remove_prefix(std::min(args.size(), item.size() + 1));
    }
    return true;
}

std::expected<Command, CniError> parse_command(const std::optional<std::string>& value)
{
    static constexpr std::array<std::pair<std::string_view, Command>, 4> kCommands{
        {{"ADD", Command::add}, {"DEL", Command::del}, {"CHECK", Command::check}, {"VERSION", Command::version}}};
    for (const auto& [name, command] : kCommands)
        if (value && *value == name)
            return command;
    return cni_error(Code::invalid_env,
                 fmt::format("CNI_COMMAND={}: vuswitch-cni takes ADD, DEL, CHECK or VERSION", value.value_or("(unset)")));
}

// A required variable (its message says the runtime should set it).
std::expected<std::string, CniError> required(const GetEnv& get, const char* name)
{
    std::optional<std::string> value = get(name);
    if (!value || value->empty())
        return cni_error(Code::invalid_env, fmt::format("{} is not set: the container runtime sets it; when calling "
                                                    "vuswitch-cni by hand, export it",
                                                    name));
    return std::move(*value);
}

// The CNI_* variables a command other than VERSION needs.
std::expected<void, CniError> parse_sandbox(const GetEnv& get, Env& env)
{
    auto id = required(get, "CNI_CONTAINERID");
    if (!id)
        return std::unexpected(id.error());
    auto ifname = required(get, "CNI_IFNAME");
    if (!ifname)
        return std::unexpected(ifname.error());
    if (!valid_container_id(*id))
        return cni_error(Code::invalid_env, fmt::format("CNI_CONTAINERID={}: a container id starts with a letter or digit, "
                                                    "followed by letters, digits, _ . -",
                                                    *id));
    if (!valid_ifname(*ifname))
        return cni_error(Code::invalid_env, fmt::format("CNI_IFNAME={}: vuswitch-cni takes interface names of 1..15 "
                                                    "letters, digits, _ . - (not . or ..)",
                                                    *ifname));
    env.container_id = std::move(*id);
    env.ifname = std::move(*ifname);
    env.netns = get("CNI_NETNS").value_or("");
    if (env.netns.empty() && env.command != Command::del)  // DEL may come after the sandbox went
        return cni_error(Code::invalid_env, "CNI_NETNS is not set: ADD and CHECK need the sandbox's network namespace path");
    env.args = get("CNI_ARGS").value_or("");
    if (!valid_cni_args(env.args))
        return cni_error(Code::invalid_env, fmt::format("CNI_ARGS={}: expected KEY=VALUE pairs separated by ;", env.args));
    return {};
}

// Typed fields of the configuration object. Each getter returns the value (or a
// fallback) and keeps the first error, naming the key and what it takes.
class Fields {
public:
    explicit Fields(const nlohmann::json& j) : j_(j) {}
    const std::optional<CniError>& error() const { return error_; }

    std::optional<std::string> string(const char* key)
    {
        if (!j_.contains(key))
            return std::nullopt;
        if (!j_[key].is_string()) {
            refuse(fmt::format("\"{}\" must be a string", key));
            return std::nullopt;
        }
        return j_[key].get<std::string>();
    }
    std::string required_string(const char* key)
    {
        std::optional<std::string> v = string(key);
        if (!v || v->empty())
            refuse(fmt::format("\"{}\" is missing: the network configuration needs it", key));
        return v.value_or("");
    }
    // An absolute path of at most `max` bytes, or `fallback` when the key is absent.
    std::string path(const char* key, const std::string& fallback, std::size_t max)
    {
        std::string p = string(key).value_or(fallback);
        if (p.empty() || p[0] != '/' || p.size() > max)
            refuse(fmt::format("\"{}\": \"{}\": expected an absolute path of at most {} bytes", key, p, max));
        return p;
    }
    std::optional<unsigned> number(const char* key, unsigned lo, unsigned hi)
    {
        if (!j_.contains(key))
            return std::nullopt;
        const nlohmann::json& v = j_[key];
        if (!v.is_number_unsigned() || v.get<uint64_t>() < lo || v.get<uint64_t>() > hi) {
            refuse(fmt::format("\"{}\": {}: expected a number {}..{}", key, v.dump(), lo, hi));
            return std::nullopt;
        }
        return unsigned(v.get<uint64_t>());
    }

private:
    void refuse(std::string msg)
    {
        if (!error_)
            error_ = CniError{Code::invalid_config, std::move(msg), {}};
    }

    const nlohmann::json& j_;
    std::optional<CniError> error_;
};

// Longest port name (16 + 1 + 15) plus "/" and ".sock": what socketDir leaves room for
// in a unix socket address (108 bytes with its NUL).
constexpr std::size_t kMaxSocketDir = 107 - (16 + 1 + 15) - 1 - 5;
constexpr std::size_t kMaxPath = 107;

std::expected<nlohmann::json, CniError> decode(std::string_view text)
{
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded())
        return cni_error(Code::decoding_failure, "the network configuration on stdin is not JSON",
                     "expected an object like {\"cniVersion\":\"1.0.0\",\"name\":\"NET\",\"type\":\"vuswitch-cni\"}");
    if (!j.is_object())
        return cni_error(Code::decoding_failure, "the network configuration on stdin is not a JSON object");
    return j;
}

std::expected<void, CniError> check_version(const std::string& version)
{
    if (version == kCniVersion)
        return {};
    return cni_error(Code::incompatible_version,
                 fmt::format("vuswitch-cni speaks CNI {}, the configuration asks for {}: set \"cniVersion\": \"{}\"",
                             kCniVersion, version, kCniVersion));
}

// The keys of the network configuration (cniVersion checked before).
std::expected<NetConf, CniError> parse_keys(const nlohmann::json& j)
{
    Fields f(j);
    NetConf conf;
    conf.name = f.required_string("name");
    f.required_string("type");
    conf.control_socket = f.path("controlSocket", conf.control_socket, kMaxPath);
    // vuswitchd's default state file is in its run dir, beside its default control socket.
    conf.state_file = f.path("stateFile", std::filesystem::path(conf.control_socket).replace_filename("ports.json"),
                             kMaxPath);
    conf.socket_dir = f.path("socketDir", conf.socket_dir, kMaxSocketDir);
    conf.pod_socket_dir = f.path("podSocketDir", conf.socket_dir, kMaxSocketDir);
    conf.mtu = f.number("mtu", 68, 9000);
    conf.vlan = f.number("vlan", 0, 4094);
    if (f.error())
        return std::unexpected(*f.error());
    return conf;
}

// runtimeConfig.CNIDeviceInfoFile: where Multus wants the device-info document
// (the plugin declares the capability in the NetworkAttachmentDefinition).
std::expected<std::string, CniError> device_info_file(const nlohmann::json& j)
{
    if (!j.contains("runtimeConfig"))
        return std::string();
    if (!j["runtimeConfig"].is_object())
        return cni_error(Code::invalid_config, "\"runtimeConfig\" must be an object");
    Fields f(j["runtimeConfig"]);
    const std::string file = f.string("CNIDeviceInfoFile").value_or("");
    if (f.error())
        return std::unexpected(*f.error());
    if (!file.empty() && file[0] != '/')
        return cni_error(Code::invalid_config, "runtimeConfig \"CNIDeviceInfoFile\" must be an absolute path");
    return file;
}

std::string trimmed_dir(std::string dir)
{
    while (dir.size() > 1 && dir.back() == '/')
        dir.pop_back();
    return dir;
}

}  // namespace

std::expected<Env, CniError> parse_env(const GetEnv& get)
{
    auto command = parse_command(get("CNI_COMMAND"));
    if (!command)
        return std::unexpected(command.error());
    Env env;
    env.command = *command;
    if (env.command == Command::version)
        return env;
    if (auto ok = parse_sandbox(get, env); !ok)
        return std::unexpected(ok.error());
    return env;
}

std::expected<NetConf, CniError> parse_config(std::string_view text)
{
    auto j = decode(text);
    if (!j)
        return std::unexpected(j.error());
    Fields f(*j);
    const std::string version = f.required_string("cniVersion");
    if (f.error())
        return std::unexpected(*f.error());
    if (auto ok = check_version(version); !ok)
        return std::unexpected(ok.error());
    auto conf = parse_keys(*j);
    auto info_file = conf ? device_info_file(*j) : std::string();
    if (!conf || !info_file)
        return std::unexpected(conf ? info_file.error() : conf.error());
    conf->cni_version = version;
    conf->device_info_file = std::move(*info_file);
    conf->socket_dir = trimmed_dir(std::move(conf->socket_dir));
    conf->pod_socket_dir = trimmed_dir(std::move(conf->pod_socket_dir));
    return conf;
}

std::string port_name(const Env& env)
{
    return fmt::format("{}-{}", std::string_view(env.container_id).substr(0, 16), env.ifname);
}

std::string host_socket_path(const NetConf& conf, const Env& env)
{
    return fmt::format("{}/{}.sock", conf.socket_dir == "/" ? "" : conf.socket_dir, port_name(env));
}

std::string pod_socket_path(const NetConf& conf, const Env& env)
{
    return fmt::format("{}/{}.sock", conf.pod_socket_dir == "/" ? "" : conf.pod_socket_dir, port_name(env));
}

nlohmann::json add_port_request(const NetConf& conf, const Env& env)
{
    nlohmann::json r{{"cmd", "add_port"}, {"type", "vhost-user"}, {"target", host_socket_path(conf, env)},
                     {"name", port_name(env)}};
    if (conf.mtu)
        r["mtu"] = *conf.mtu;
    if (conf.vlan)
        r["vlan"] = *conf.vlan;
    return r;
}

nlohmann::json add_result(const NetConf& conf, const Env& env)
{
    return {{"cniVersion", kCniVersion},
            {"interfaces", {{{"name", env.ifname}, {"sandbox", env.netns}, {"socketPath", host_socket_path(conf, env)}}}},
            {"ips", nlohmann::json::array()}};
}

nlohmann::json device_info(const NetConf& conf, const Env& env)
{
    return {{"type", "vhost-user"},
            {"version", "1.1.0"},
            {"vhost-user", {{"mode", "client"}, {"path", pod_socket_path(conf, env)}}}};
}

nlohmann::json version_result()
{
    return {{"cniVersion", kCniVersion}, {"supportedVersions", {kCniVersion}}};
}

nlohmann::json error_result(const CniError& e)
{
    nlohmann::json j{{"cniVersion", kCniVersion}, {"code", unsigned(e.code)}, {"msg", e.msg}};
    if (!e.details.empty())
        j["details"] = e.details;
    return j;
}

}  // namespace vusw::cni
