// --user/--group, the socket permission options, and the per-thread credential check.
#include "control/privileges.h"

#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "control/config.h"

using namespace vusw;

namespace {

Result<ParsedArgs> parse(std::initializer_list<const char*> args)
{
    std::vector<const char*> argv{"vuswitchd"};
    argv.insert(argv.end(), args.begin(), args.end());
    return parse_args(int(argv.size()), argv.data());
}

std::string error_of(std::initializer_list<const char*> args)
{
    auto r = parse(args);
    REQUIRE_FALSE(r.has_value());
    CHECK(std::string(r.error().reason) == "config");
    return r.error().detail;
}

// The status lines of a thread that dropped to 65534/65534 (capabilities as given).
std::string status_of(const char* uid, const char* gid, const char* cap_eff, const char* cap_prm = "0000000000000000")
{
    return std::string("Name:\tvuswitchd\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t") + uid + "\nGid:\t" + gid +
           "\nFDSize:\t64\nCapInh:\t0000000000000000\nCapPrm:\t" + cap_prm + "\nCapEff:\t" + cap_eff +
           "\nCapBnd:\t000001ffffffffff\n";
}

}  // namespace

TEST_CASE("without --user nothing is dropped and the sockets are 0660 with their creator's group")
{
    auto r = parse({});
    REQUIRE(r.has_value());
    CHECK_FALSE(r->config.user);
    CHECK_FALSE(r->config.group);
    CHECK(r->config.socket_access == SocketAccess{0660, std::nullopt});
    CHECK(r->config.ctl_socket_access == SocketAccess{0660, std::nullopt});
    CHECK(r->config.huge_dir.empty());
}

TEST_CASE("--user takes the user's primary group, which the sockets get too")
{
    auto r = parse({"--user", "nobody"});
    REQUIRE(r.has_value());
    REQUIRE(r->config.user);
    CHECK(r->config.user->name == "nobody");
    CHECK(r->config.user->id == 65534);
    REQUIRE(r->config.group);
    CHECK(r->config.group->id == 65534);  // nogroup
    CHECK(r->config.socket_access.group == r->config.group);
    CHECK(r->config.ctl_socket_access.group == r->config.group);
}

TEST_CASE("--group, numeric ids, and socket groups of their own")
{
    auto r = parse({"--user", "65534", "--group", "0", "--socket-group", "daemon", "--ctl-socket-group", "65534",
                    "--socket-mode", "0666", "--ctl-socket-mode", "600"});
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().detail));
    CHECK(r->config.user->name == "nobody");
    CHECK(r->config.group->name == "root");
    CHECK(r->config.socket_access.mode == 0666);
    CHECK(r->config.socket_access.group->name == "daemon");
    CHECK(r->config.ctl_socket_access.mode == 0600);
    CHECK(r->config.ctl_socket_access.group->id == 65534);
}

TEST_CASE("unknown users and groups, root, and --group alone are config errors saying what to do")
{
    CHECK(error_of({"--user", "no-such-user-vusw"}).find("useradd") != std::string::npos);
    CHECK(error_of({"--user", "nobody", "--group", "no-such-group-vusw"}).find("groupadd") != std::string::npos);
    CHECK(error_of({"--socket-group", "no-such-group-vusw"}).find("--socket-group no-such-group-vusw: no such group") !=
          std::string::npos);
    CHECK(error_of({"--ctl-socket-group", "no-such-group-vusw"}).find("--ctl-socket-group") != std::string::npos);
    CHECK(error_of({"--user", "root"}).find("root") != std::string::npos);
    CHECK(error_of({"--user", "0"}).find("no drop") != std::string::npos);
    CHECK(error_of({"--group", "nogroup"}).find("give --user too") != std::string::npos);
}

TEST_CASE("the privilege options in a config file")
{
    char path[] = "/tmp/vusw-priv-conf-XXXXXX";
    const int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    const std::string text = "user = nobody\ngroup = daemon\nsocket-mode = 0600\nctl-socket-group = root\n"
                             "huge-dir = /dev/hugepages\n";
    REQUIRE(write(fd, text.data(), text.size()) == ssize_t(text.size()));
    close(fd);
    auto r = parse({"--config", path});
    unlink(path);
    REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().detail));
    CHECK(r->config.user->name == "nobody");
    CHECK(r->config.group->name == "daemon");
    CHECK(r->config.socket_access == SocketAccess{0600, Identity{"daemon", 1}});
    CHECK(r->config.ctl_socket_access == SocketAccess{0660, Identity{"root", 0}});
    CHECK(r->config.huge_dir == "/dev/hugepages");
}

TEST_CASE("socket modes: octal 0..0777, else the expected form")
{
    for (const char* bad : {"rw-rw----", "0888", "1777", "66O", "", "-1", "07777", "0x1ff"})
        CHECK(error_of({"--socket-mode", bad}).find("expected an octal permission mode 0000..0777, e.g. 0660") !=
              std::string::npos);
    CHECK(error_of({"--ctl-socket-mode", "999"}).find("--ctl-socket-mode 999") != std::string::npos);
    CHECK(parse_mode("--socket-mode", "0o640").value() == 0640);
    CHECK(parse_mode("--socket-mode", "0").value() == 0);
    CHECK(parse_mode("--socket-mode", "777").value() == 0777);
}

TEST_CASE("--huge-dir, and not with --no-huge")
{
    auto r = parse({"--huge-dir", "/mnt/huge1G"});
    REQUIRE(r.has_value());
    CHECK(r->config.huge_dir == "/mnt/huge1G");
    CHECK(error_of({"--huge-dir", "/mnt/h", "--no-huge"}).find("pick one") != std::string::npos);
}

TEST_CASE("a socket is bound with the mode and group asked for, whatever the umask")
{
    char dir[] = "/tmp/vusw-priv-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    const std::string path = std::string(dir) + "/s.sock";
    const mode_t old = umask(0);
    for (unsigned mode : {0600u, 0660u, 0666u}) {
        const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strcpy(addr.sun_path, path.c_str());
        CHECK(bind_with_access(fd, addr, path, SocketAccess{mode, Identity{"daemon", 1}}) == 0);
        struct stat st {};
        REQUIRE(stat(path.c_str(), &st) == 0);
        CHECK((st.st_mode & 07777) == mode);
        if (geteuid() == 0)
            CHECK(st.st_gid == 1);
        close(fd);
        unlink(path.c_str());
    }
    CHECK(umask(old) == 0);  // restored
    rmdir(dir);
}

TEST_CASE("thread credentials: every id the target, no capability left")
{
    auto dropped = parse_thread_status(status_of("65534\t65534\t65534\t65534", "65534\t65534\t65534\t65534", "0000000000000000"));
    REQUIRE(dropped);
    CHECK_FALSE(credentials_problem(*dropped, 65534, 65534));

    auto saved_root = parse_thread_status(status_of("65534\t65534\t0\t65534", "65534\t65534\t65534\t65534", "0000000000000000"));
    REQUIRE(saved_root);
    CHECK(credentials_problem(*saved_root, 65534, 65534).value() == "saved uid 0 (expected 65534)");

    auto root_gid = parse_thread_status(status_of("65534\t65534\t65534\t65534", "0\t0\t0\t0", "0000000000000000"));
    CHECK(credentials_problem(root_gid.value(), 65534, 65534).value() == "real gid 0 (expected 65534)");

    auto caps = parse_thread_status(status_of("65534\t65534\t65534\t65534", "65534\t65534\t65534\t65534",
                                              "0000000000001000", "0000000000003000"));
    CHECK(credentials_problem(caps.value(), 65534, 65534).value() ==
          "capabilities left: effective 0x1000, permitted 0x3000");

    CHECK_FALSE(parse_thread_status("Name:\tx\nUid:\t0\t0\t0\t0\n"));  // no Gid/Cap lines: unreadable
}
