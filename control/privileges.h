// Least privilege: vuswitchd starts as root (hugepages, NICs, sockets, PMD threads) and
// then continues as an ordinary user (--user/--group) with no capabilities at all.
//
// Why none: everything that needs privilege happens before the drop (DPDK maps its
// hugepages, opens NICs and VFIO containers; sockets are bound). What comes later needs
// none: accepting front-ends, mapping their memfds, binding vhost-user sockets in RUN_DIR
// (chowned to the user), DPDK memory growth (--in-memory: memfd, no hugepage files).
// VFIO pins guest memory against RLIMIT_MEMLOCK, which is raised before the drop.
// What then fails is said when it fails: a NIC added at run time that needs
// CAP_NET_RAW/CAP_NET_ADMIN (net_af_packet, net_tap), postcopy without
// vm.unprivileged_userfaultfd=1.
//
// Socket permissions: every listening socket (vhost-user servers, the control socket)
// gets an explicit mode and, if asked, a group, with no moment in which it is more open.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <optional>
#include <string>
#include <vector>

#include "vusw/result.h"

namespace vusw {

struct Config;

// A user or group: its name (for messages) and id.
struct Identity {
    std::string name;
    uint32_t id = 0;
    bool operator==(const Identity&) const = default;
};

// Who may connect to a listening socket: connect(2) needs write permission on it.
struct SocketAccess {
    unsigned mode = 0660;           // --socket-mode / --ctl-socket-mode
    std::optional<Identity> group;  // --socket-group / --ctl-socket-group, else --group with --user, else unchanged
    bool operator==(const SocketAccess&) const = default;
};

// The user or group called `name` (or a number); errors name `flag` and say what to do.
Result<Identity> lookup_user(const std::string& flag, const std::string& name);
Result<Identity> lookup_group(const std::string& flag, const std::string& name);
// The primary group id of user `uid` (/etc/passwd), as a number in text ("" if none).
std::string primary_group_of(uint32_t uid);
// "0660", "660", "0o660": an octal permission mode 0..0777.
Result<unsigned> parse_mode(const std::string& flag, const std::string& text);

// bind(2) of a unix socket at `path`, then its mode and group as `access` says; the file
// is created 0600 (umask), so no one else can connect before the chmod. 0 or -1 and errno.
int bind_with_access(int fd, const sockaddr_un& addr, const std::string& path, const SocketAccess& access);

// Continues as config.user / config.group: RUN_DIR and `files` (the sockets bound so
// far, the state file of the ports added at run time, which the user rewrites) are
// chowned to them, supplementary groups become the user's plus the socket groups, then
// every thread's gids and uids change (glibc applies set*id to all threads), which clears
// every capability. Checks each thread in /proc/self/task; an error if one kept anything.
Status drop_privileges(const Config& config, const std::vector<std::string>& files);

// What one thread's /proc/.../status says about its identity.
struct ThreadCredentials {
    uint32_t uid[4] = {};  // real, effective, saved, file system
    uint32_t gid[4] = {};
    uint64_t cap_eff = 0, cap_prm = 0;
};
// Parses the Uid:, Gid:, CapEff: and CapPrm: lines of a /proc status file.
std::optional<ThreadCredentials> parse_thread_status(const std::string& status);
// Why a thread whose status says `t` is not fully uid/gid without capabilities, if it is not.
std::optional<std::string> credentials_problem(const ThreadCredentials& t, uint32_t uid, uint32_t gid);

}  // namespace vusw
