// Dropping root after start-up and the permissions of listening sockets (privileges.h).
#include "control/privileges.h"

#include <dirent.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <fmt/format.h>

#include "control/config.h"
#include "vusw/log.h"

namespace vusw {
namespace {

// getpw*_r / getgr*_r want a caller's buffer; 64 KiB holds any sane entry.
constexpr std::size_t kNssBuffer = 65536;

// A user or group given by number: 0..4294967294 (4294967295 is (uid_t)-1, "no id").
std::optional<uint32_t> numeric_id(const std::string& s)
{
    uint64_t id = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), id);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || id >= UINT32_MAX)
        return std::nullopt;
    return uint32_t(id);
}

std::string read_file(const std::string& path)
{
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// Changes the owner of `path` (a directory vuswitchd uses, or a socket it bound);
// uid/gid -1: unchanged.
Status chown_path(const std::string& path, uid_t uid, gid_t gid)
{
    if (::chown(path.c_str(), uid, gid) != 0)
        return fail("privileges", fmt::format("cannot chown {} to the --user: {}", path, strerror(errno)));
    return {};
}

// RUN_DIR is vuswitchd's own directory: the user creates and removes sockets there after
// the drop. A shared directory (/tmp: sticky or world-writable) is left as it is.
Status own_run_dir(const Config& c, uid_t uid, gid_t gid)
{
    struct stat st {};
    if (::stat(c.run_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return {};  // nothing there: only sockets outside it are used
    if ((st.st_mode & (S_ISVTX | S_IWOTH)) != 0 || std::filesystem::path(c.run_dir).relative_path().empty()) {
        log(LogLevel::warn, "--run-dir {} is a shared directory: not given to user {}; sockets added later go "
                            "where the user may write", c.run_dir, c.user->name);
        return {};
    }
    return chown_path(c.run_dir, uid, gid);
}

// The user's groups (/etc/group), its --group and the groups its sockets belong to (so
// that it may give a socket bound later that group).
Result<std::vector<gid_t>> supplementary_groups(const Config& c, gid_t gid)
{
    int n = 64;
    std::vector<gid_t> groups(std::size_t(n), 0);
    if (getgrouplist(c.user->name.c_str(), gid, groups.data(), &n) < 0) {
        groups.resize(std::size_t(n));
        if (getgrouplist(c.user->name.c_str(), gid, groups.data(), &n) < 0)
            return fail("privileges", fmt::format("--user {}: cannot list its groups", c.user->name));
    }
    groups.resize(std::size_t(n));
    for (const SocketAccess* a : {&c.socket_access, &c.ctl_socket_access})
        if (a->group && std::find(groups.begin(), groups.end(), gid_t(a->group->id)) == groups.end())
            groups.push_back(gid_t(a->group->id));
    return groups;
}

// Every thread of the process: its uids and gids, and no capability left.
Status check_threads(uid_t uid, gid_t gid)
{
    std::error_code ec;
    unsigned threads = 0;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
        const std::string status = read_file(task.path() / "status");
        const auto creds = parse_thread_status(status);
        if (!creds)
            return fail("privileges", fmt::format("cannot read {}/status", task.path().string()));
        if (auto why = credentials_problem(*creds, uid, gid))
            return fail("privileges", fmt::format("thread {} after dropping privileges: {}",
                                                  task.path().filename().string(), *why));
        ++threads;
    }
    if (ec || threads == 0)
        return fail("privileges", "cannot list /proc/self/task to check the threads' privileges");
    log(LogLevel::debug, "all {} threads run as uid {} gid {} without capabilities", threads, uid, gid);
    return {};
}

}  // namespace

Result<Identity> lookup_user(const std::string& flag, const std::string& name)
{
    passwd pw{}, *found = nullptr;
    std::vector<char> buf(kNssBuffer);
    if (const auto id = numeric_id(name))
        getpwuid_r(uid_t(*id), &pw, buf.data(), buf.size(), &found);
    else if (name.find_first_not_of("0123456789") != std::string::npos)
        getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
    if (found == nullptr)
        return fail("config", fmt::format("{} {}: no such user; create it (useradd --system --no-create-home {}) "
                                          "or name an existing one", flag, name, name));
    if (found->pw_uid == 0)
        return fail("config", fmt::format("{} {}: that is root, no drop at all; name an unprivileged user or "
                                          "leave {} out", flag, name, flag));
    return Identity{found->pw_name, found->pw_uid};
}

Result<Identity> lookup_group(const std::string& flag, const std::string& name)
{
    group gr{}, *found = nullptr;
    std::vector<char> buf(kNssBuffer);
    if (const auto id = numeric_id(name))
        getgrgid_r(gid_t(*id), &gr, buf.data(), buf.size(), &found);
    else if (name.find_first_not_of("0123456789") != std::string::npos)
        getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found);
    if (found == nullptr)
        return fail("config", fmt::format("{} {}: no such group; create it (groupadd --system {}) or name an "
                                          "existing one", flag, name, name));
    return Identity{found->gr_name, found->gr_gid};
}

std::string primary_group_of(uint32_t uid)
{
    passwd pw{}, *found = nullptr;
    std::vector<char> buf(kNssBuffer);
    getpwuid_r(uid_t(uid), &pw, buf.data(), buf.size(), &found);
    return found == nullptr ? "" : std::to_string(found->pw_gid);
}

Result<unsigned> parse_mode(const std::string& flag, const std::string& text)
{
    const std::string digits = text.rfind("0o", 0) == 0 ? text.substr(2) : text;
    if (digits.empty() || digits.size() > 4 || digits.find_first_not_of("01234567") != std::string::npos ||
        std::stoul(digits, nullptr, 8) > 0777)
        return fail("config", fmt::format("{} {}: expected an octal permission mode 0000..0777, e.g. 0660 "
                                          "(owner and group may connect)", flag, text));
    return unsigned(std::stoul(digits, nullptr, 8));
}

int bind_with_access(int fd, const sockaddr_un& addr, const std::string& path, const SocketAccess& access)
{
    // The control thread is the only one creating files, so the umask can be changed around
    // the bind.
    const mode_t old = ::umask(0177);
    const int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    ::umask(old);
    if (rc != 0)
        return rc;
    if (access.group && ::chown(path.c_str(), uid_t(-1), gid_t(access.group->id)) != 0)
        return -1;
    return ::chmod(path.c_str(), mode_t(access.mode));
}

Status drop_privileges(const Config& c, const std::vector<std::string>& files)
{
    if (!c.user)
        return {};
    const uid_t uid = c.user->id;
    const gid_t gid = c.group->id;
    // VFIO pins guest memory mapped later against RLIMIT_MEMLOCK unless CAP_IPC_LOCK.
    const rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
    if (std::any_of(c.nics.begin(), c.nics.end(), [](const PortSpec& n) { return looks_like_pci(n.target); }) &&
        ::setrlimit(RLIMIT_MEMLOCK, &unlimited) != 0)
        log(LogLevel::warn, "cannot lift RLIMIT_MEMLOCK ({}): a VFIO NIC may fail to map guest memory (raise it "
                            "before starting, e.g. LimitMEMLOCK=infinity)", strerror(errno));
    if (auto ok = own_run_dir(c, uid, gid); !ok)
        return ok;
    for (const std::string& path : files)  // removable and replaceable later, also in a sticky directory
        if (auto ok = chown_path(path, uid, gid_t(-1)); !ok)
            return ok;
    auto groups = supplementary_groups(c, gid);
    if (!groups)
        return std::unexpected(groups.error());
    if (::setgroups(groups->size(), groups->data()) != 0 || ::setresgid(gid, gid, gid) != 0 ||
        ::setresuid(uid, uid, uid) != 0)
        return fail("privileges", fmt::format("cannot become user {} group {}: {} (vuswitchd must start as root "
                                              "with CAP_SETUID and CAP_SETGID)", c.user->name, c.group->name,
                                              strerror(errno)));
    if (auto ok = check_threads(uid, gid); !ok)
        return ok;
#ifdef __SANITIZE_ADDRESS__
    // The uid change made the process non-dumpable (no core dumps of guest memory, no
    // ptrace by the user's other processes); LeakSanitizer's exit check ptraces our
    // threads from a helper process, so sanitizer builds undo that.
    ::prctl(PR_SET_DUMPABLE, 1);
#endif
    log(LogLevel::info, "running as user {} ({}), group {} ({}), without capabilities", c.user->name, uid,
        c.group->name, gid);
    return {};
}

std::optional<ThreadCredentials> parse_thread_status(const std::string& status)
{
    ThreadCredentials t;
    unsigned found = 0;
    std::stringstream in(status);
    std::string line;
    while (std::getline(in, line)) {
        std::stringstream fields(line);
        std::string key;
        fields >> key;
        if (key == "Uid:" && (fields >> t.uid[0] >> t.uid[1] >> t.uid[2] >> t.uid[3]))
            found |= 1;
        else if (key == "Gid:" && (fields >> t.gid[0] >> t.gid[1] >> t.gid[2] >> t.gid[3]))
            found |= 2;
        else if (key == "CapEff:" && (fields >> std::hex >> t.cap_eff))
            found |= 4;
        else if (key == "CapPrm:" && (fields >> std::hex >> t.cap_prm))
            found |= 8;
    }
    return found == 15 ? std::optional(t) : std::nullopt;
}

std::optional<std::string> credentials_problem(const ThreadCredentials& t, uint32_t uid, uint32_t gid)
{
    static const char* const kWhich[] = {"real", "effective", "saved", "file system"};
    for (int i = 0; i < 4; ++i) {
        if (t.uid[i] != uid)
            return fmt::format("{} uid {} (expected {})", kWhich[i], t.uid[i], uid);
        if (t.gid[i] != gid)
            return fmt::format("{} gid {} (expected {})", kWhich[i], t.gid[i], gid);
    }
    if (t.cap_eff != 0 || t.cap_prm != 0)
        return fmt::format("capabilities left: effective {:#x}, permitted {:#x}", t.cap_eff, t.cap_prm);
    return std::nullopt;
}

}  // namespace vusw
