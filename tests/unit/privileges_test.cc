// Binding sockets with a mode and group, and the per-thread credential check after the drop.
// (Parsing the options: config_test.cc.)
#include "control/privileges.h"

#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include <doctest/doctest.h>


using namespace vusw;

namespace {

// The status lines of a thread that dropped to 65534/65534 (capabilities as given).
std::string status_of(const char* uid, const char* gid, const char* cap_eff, const char* cap_prm = "0000000000000000")
{
    return std::string("Name:\tvuswitchd\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t") + uid + "\nGid:\t" + gid +
           "\nFDSize:\t64\nCapInh:\t0000000000000000\nCapPrm:\t" + cap_prm + "\nCapEff:\t" + cap_eff +
           "\nCapBnd:\t000001ffffffffff\n";
}

}  // namespace

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
