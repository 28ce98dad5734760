// Client side of the management socket; see control_client.h.
#include "control/control_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "vusw/unique_fd.h"

namespace vusw {

namespace {

Result<UniqueFd> connect_to(const std::string& path)
{
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path))
        return fail(control_client_error::not_running,
                    fmt::format("control socket path {} too long (at most {} bytes)", path, sizeof(addr.sun_path) - 1));
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() >= 0 && connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0)
        return fd;
    const int err = errno;
    return fail(err == EACCES || err == EPERM ? control_client_error::no_permission : control_client_error::not_running,
                fmt::format("cannot reach vuswitchd at {}: {}", path, strerror(err)));
}

}  // namespace

Result<std::string> ask(const std::string& path, const std::string& request, std::chrono::milliseconds timeout)
{
    auto fd = connect_to(path);
    if (!fd)
        return std::unexpected(fd.error());
    const std::string line = request + "\n";
    (void)send(fd->get(), line.data(), line.size(), MSG_NOSIGNAL);  // a failure shows as no answer
    std::string reply;
    char buf[65536];
    while (reply.find('\n') == std::string::npos) {
        pollfd p{fd->get(), POLLIN, 0};
        if (poll(&p, 1, int(timeout.count())) <= 0)
            return fail(control_client_error::no_answer,
                        fmt::format("vuswitchd at {} did not answer within {} s", path, timeout.count() / 1000.0));
        const ssize_t n = recv(fd->get(), buf, sizeof(buf), 0);
        if (n <= 0)
            break;
        reply.append(buf, std::size_t(n));
    }
    if (reply.empty())
        return fail(control_client_error::no_answer,
                    fmt::format("vuswitchd at {} closed the connection without an answer", path));
    return reply.substr(0, reply.find('\n'));
}

Result<nlohmann::json> parse_reply(const std::string& path, const std::string& line)
{
    nlohmann::json reply = nlohmann::json::parse(line, nullptr, false);
    if (reply.is_discarded())
        return fail(control_client_error::no_answer, fmt::format("the answer of vuswitchd at {} is not JSON", path));
    if (!reply.is_object())
        return fail(control_client_error::no_answer,
                    fmt::format("the answer of vuswitchd at {} is not a JSON object", path));
    return reply;
}

}  // namespace vusw
