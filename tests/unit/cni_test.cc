// vuswitch-cni's pure parts (control/cni/spec.h): the CNI_* environment, the network
// configuration, the port name and socket paths, and the documents printed on stdout.
#include "control/cni/spec.h"
#include "control/control_client.h"

#include <map>
#include <string>

#include <doctest/doctest.h>

using namespace vusw::cni;

namespace {

constexpr const char* kId = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

std::map<std::string, std::string> add_vars()
{
    return {{"CNI_COMMAND", "ADD"}, {"CNI_CONTAINERID", kId}, {"CNI_NETNS", "/var/run/netns/cni-1"},
            {"CNI_IFNAME", "net1"}, {"CNI_PATH", "/opt/cni/bin"},
            {"CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=dpdk-app"}};
}

std::expected<Env, CniError> env_of(const std::map<std::string, std::string>& vars)
{
    return parse_env([&](const char* name) -> std::optional<std::string> {
        const auto it = vars.find(name);
        return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
    });
}

// The env's error code, or 0 if it parsed.
unsigned env_code(std::map<std::string, std::string> vars, const std::string& key, const char* value)
{
    if (value == nullptr)
        vars.erase(key);
    else
        vars[key] = value;
    const auto env = env_of(vars);
    return env ? 0 : unsigned(env.error().code);
}

unsigned config_code(const std::string& text)
{
    const auto conf = parse_config(text);
    return conf ? 0 : unsigned(conf.error().code);
}

Env pod_env()
{
    auto env = env_of(add_vars());
    REQUIRE(env);
    return *env;
}

NetConf conf_of(const std::string& text)
{
    auto conf = parse_config(text);
    REQUIRE_MESSAGE(conf, (conf ? std::string() : conf.error().msg));
    return *conf;
}

}  // namespace

TEST_CASE("CNI env: what kubelet sets parses; VERSION needs only CNI_COMMAND")
{
    const Env env = pod_env();
    CHECK(env.command == Command::add);
    CHECK(env.container_id == kId);
    CHECK(env.netns == "/var/run/netns/cni-1");
    CHECK(env.ifname == "net1");
    auto version = env_of({{"CNI_COMMAND", "VERSION"}});
    REQUIRE(version);
    CHECK(version->command == Command::version);
    auto del = env_of({{"CNI_COMMAND", "DEL"}, {"CNI_CONTAINERID", kId}, {"CNI_IFNAME", "net1"}});
    REQUIRE(del);  // no netns: the sandbox may be gone
    CHECK(del->command == Command::del);
}

TEST_CASE("CNI env: a missing or bad variable is code 4 naming it")
{
    const auto vars = add_vars();
    CHECK(env_code(vars, "CNI_COMMAND", nullptr) == 4);
    CHECK(env_code(vars, "CNI_COMMAND", "GC") == 4);  // CNI 1.1, not spoken here
    CHECK(env_code(vars, "CNI_COMMAND", "add") == 4);
    CHECK(env_code(vars, "CNI_CONTAINERID", nullptr) == 4);
    CHECK(env_code(vars, "CNI_CONTAINERID", "") == 4);
    CHECK(env_code(vars, "CNI_CONTAINERID", "-abc") == 4);
    CHECK(env_code(vars, "CNI_CONTAINERID", "abc/def") == 4);
    CHECK(env_code(vars, "CNI_CONTAINERID", "a_b.c-D") == 0);
    CHECK(env_code(vars, "CNI_NETNS", nullptr) == 4);
    CHECK(env_code(vars, "CNI_IFNAME", nullptr) == 4);
    CHECK(env_code(vars, "CNI_IFNAME", "..") == 4);
    CHECK(env_code(vars, "CNI_IFNAME", "a:b") == 4);
    CHECK(env_code(vars, "CNI_IFNAME", "a b") == 4);
    CHECK(env_code(vars, "CNI_IFNAME", "0123456789abcdef") == 4);  // 16 > IFNAMSIZ - 1
    CHECK(env_code(vars, "CNI_IFNAME", "0123456789abcde") == 0);
    CHECK(env_code(vars, "CNI_ARGS", "K8S_POD_NAME") == 4);
    CHECK(env_code(vars, "CNI_ARGS", "=x") == 4);
    CHECK(env_code(vars, "CNI_ARGS", "") == 0);
    auto env = env_of([] {
        auto v = add_vars();
        v.erase("CNI_IFNAME");
        return v;
    }());
    REQUIRE_FALSE(env);
    CHECK(env.error().msg.find("CNI_IFNAME is not set") == 0);
}

TEST_CASE("network config: defaults, vuswitch keys, runtimeConfig.CNIDeviceInfoFile")
{
    const NetConf plain = conf_of(R"({"cniVersion":"1.0.0","name":"vuswitch-net","type":"vuswitch-cni"})");
    CHECK(plain.name == "vuswitch-net");
    CHECK(plain.control_socket == "/run/vuswitch/vuswitchd.ctl");
    CHECK(plain.state_file == "/run/vuswitch/ports.json");
    CHECK(plain.socket_dir == "/run/vuswitch/pods");
    CHECK(plain.pod_socket_dir == "/run/vuswitch/pods");
    CHECK_FALSE(plain.mtu);
    CHECK_FALSE(plain.vlan);
    CHECK(plain.device_info_file.empty());
    const NetConf full = conf_of(R"({"cniVersion":"1.0.0","name":"n","type":"vuswitch-cni","controlSocket":"/x/ctl",
        "socketDir":"/var/lib/vusw/","podSocketDir":"/var/run/vuswitch","mtu":9000,"vlan":10,
        "capabilities":{"CNIDeviceInfoFile":true},"ipam":{},
        "runtimeConfig":{"CNIDeviceInfoFile":"/var/run/k8s.cni.cncf.io/devinfo/cni/x-net1-device.json"}})");
    CHECK(full.control_socket == "/x/ctl");
    CHECK(full.state_file == "/x/ports.json");  // beside the control socket, as vuswitchd's defaults are
    CHECK(conf_of(R"({"cniVersion":"1.0.0","name":"n","type":"vuswitch-cni","stateFile":"/var/lib/v.json"})")
              .state_file == "/var/lib/v.json");
    CHECK(full.socket_dir == "/var/lib/vusw");  // trailing / dropped
    CHECK(full.pod_socket_dir == "/var/run/vuswitch");
    CHECK(full.mtu == 9000u);
    CHECK(full.vlan == 10u);
    CHECK(full.device_info_file == "/var/run/k8s.cni.cncf.io/devinfo/cni/x-net1-device.json");
}

TEST_CASE("network config: not JSON is 6, another cniVersion 1, a bad key 7")
{
    CHECK(config_code("") == 6);
    CHECK(config_code("{\"cniVersion\":") == 6);
    CHECK(config_code("[1]") == 6);
    CHECK(config_code(R"({"cniVersion":"0.4.0","name":"n","type":"vuswitch-cni"})") == 1);
    CHECK(config_code(R"({"cniVersion":"1.1.0","name":"n","type":"vuswitch-cni"})") == 1);
    const std::string head = R"({"cniVersion":"1.0.0","name":"n","type":"vuswitch-cni")";
    CHECK(config_code(R"({"name":"n","type":"vuswitch-cni"})") == 7);
    CHECK(config_code(R"({"cniVersion":"1.0.0","type":"vuswitch-cni"})") == 7);
    CHECK(config_code(R"({"cniVersion":"1.0.0","name":"n"})") == 7);
    CHECK(config_code(head + R"(,"controlSocket":"relative.ctl"})") == 7);
    CHECK(config_code(head + R"(,"controlSocket":5})") == 7);
    CHECK(config_code(head + R"(,"stateFile":"ports.json"})") == 7);
    CHECK(config_code(head + R"(,"socketDir":"/)" + std::string(70, 'd') + R"("})") == 7);  // socket path > 107
    CHECK(config_code(head + R"(,"socketDir":"/)" + std::string(68, 'd') + R"("})") == 0);
    CHECK(config_code(head + R"(,"mtu":67})") == 7);
    CHECK(config_code(head + R"(,"mtu":9001})") == 7);
    CHECK(config_code(head + R"(,"mtu":"1500"})") == 7);
    CHECK(config_code(head + R"(,"vlan":4095})") == 7);
    CHECK(config_code(head + R"(,"vlan":-1})") == 7);
    CHECK(config_code(head + R"(,"runtimeConfig":[]})") == 7);
    CHECK(config_code(head + R"(,"runtimeConfig":{"CNIDeviceInfoFile":"rel.json"}})") == 7);
    const auto bad = parse_config(head + R"(,"mtu":9001})");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().msg == "\"mtu\": 9001: expected a number 68..9000");
}

TEST_CASE("port name and socket paths: 16 characters of the container id and the interface")
{
    const Env env = pod_env();
    const NetConf conf = conf_of(R"({"cniVersion":"1.0.0","name":"n","type":"vuswitch-cni",
        "socketDir":"/run/vuswitch/pods","podSocketDir":"/var/run/vuswitch"})");
    CHECK(port_name(env) == "0123456789abcdef-net1");
    CHECK(host_socket_path(conf, env) == "/run/vuswitch/pods/0123456789abcdef-net1.sock");
    CHECK(pod_socket_path(conf, env) == "/var/run/vuswitch/0123456789abcdef-net1.sock");
    Env longest = env;
    longest.ifname = "0123456789abcde";
    CHECK(port_name(longest).size() == 32);  // vuswitchd takes 64
    Env short_id = env;
    short_id.container_id = "abc";
    CHECK(port_name(short_id) == "abc-net1");
    const NetConf root = conf_of(R"({"cniVersion":"1.0.0","name":"n","type":"vuswitch-cni","socketDir":"/"})");
    CHECK(host_socket_path(root, env) == "/0123456789abcdef-net1.sock");
}

TEST_CASE("add_port request carries the port options of the config")
{
    const Env env = pod_env();
    const auto request = add_port_request(conf_of(R"({"cniVersion":"1.0.0","name":"n","type":"vuswitch-cni",
        "mtu":9000,"vlan":0})"), env);
    CHECK(request == nlohmann::json::parse(R"({"cmd":"add_port","type":"vhost-user",
        "target":"/run/vuswitch/pods/0123456789abcdef-net1.sock","name":"0123456789abcdef-net1","mtu":9000,"vlan":0})"));
    const auto plain = add_port_request(conf_of(R"({"cniVersion":"1.0.0","name":"n","type":"vuswitch-cni"})"), env);
    CHECK_FALSE(plain.contains("mtu"));
    CHECK_FALSE(plain.contains("vlan"));
}

TEST_CASE("documents on stdout: result, device-info, VERSION, error")
{
    const Env env = pod_env();
    const NetConf conf = conf_of(R"({"cniVersion":"1.0.0","name":"n","type":"vuswitch-cni","podSocketDir":"/pod"})");
    CHECK(add_result(conf, env) == nlohmann::json::parse(R"({"cniVersion":"1.0.0","interfaces":[{"name":"net1",
        "sandbox":"/var/run/netns/cni-1","socketPath":"/run/vuswitch/pods/0123456789abcdef-net1.sock"}],"ips":[]})"));
    CHECK(device_info(conf, env) == nlohmann::json::parse(R"({"type":"vhost-user","version":"1.1.0",
        "vhost-user":{"mode":"client","path":"/pod/0123456789abcdef-net1.sock"}})"));
    CHECK(version_result() == nlohmann::json::parse(R"({"cniVersion":"1.0.0","supportedVersions":["1.0.0"]})"));
    CHECK(error_result({Code::try_again_later, "start vuswitchd", "ECONNREFUSED"}) ==
          nlohmann::json::parse(R"({"cniVersion":"1.0.0","code":11,"msg":"start vuswitchd","details":"ECONNREFUSED"})"));
    CHECK_FALSE(error_result({Code::invalid_env, "x", ""}).contains("details"));
}

TEST_CASE("control client: no daemon at the path is not_running")
{
    const auto reply = vusw::ask("/nonexistent-vusw-dir/vuswitchd.ctl", "{\"cmd\":\"version\"}");
    REQUIRE_FALSE(reply);
    CHECK(std::string_view(reply.error().reason) == vusw::control_client_error::not_running);
    CHECK(reply.error().detail == "cannot reach vuswitchd at /nonexistent-vusw-dir/vuswitchd.ctl: No such file or directory");
    const auto bad = vusw::parse_reply("/x", "[1]");
    REQUIRE_FALSE(bad);
    CHECK(std::string_view(bad.error().reason) == vusw::control_client_error::no_answer);
}
