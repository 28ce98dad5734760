// vhost-user framing.
#include "control/vhost_user/connection.h"

#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace vusw::vhost_user {
namespace {

constexpr int kPayloadTimeoutMs = 1000;  // the payload follows its header at once

// Collects the fds of a received message; closes them all if there are too many.
Status take_fds(msghdr& mh, std::vector<UniqueFd>& fds)
{
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        const std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const auto* data = reinterpret_cast<const int*>(CMSG_DATA(c));
        for (std::size_t i = 0; i < n; ++i) {
            int fd;
            std::memcpy(&fd, data + i, sizeof(fd));
            fds.emplace_back(fd);
        }
    }
    if ((mh.msg_flags & MSG_CTRUNC) || fds.size() > kMaxFds) {
        fds.clear();
        return fail("too_many_fds", fmt::format("message carried more than {} fds", kMaxFds));
    }
    return {};
}

}  // namespace

Result<Header> parse_header(std::span<const std::byte> bytes)
{
    if (bytes.size() < sizeof(Header))
        return fail("truncated", fmt::format("header of {} bytes, need {}", bytes.size(), sizeof(Header)));
    Header h;
    std::memcpy(&h, bytes.data(), sizeof(h));
    if ((h.flags & kVersionMask) != kVersion)
        return fail("bad_version", fmt::format("flags {:#x}: version must be 1", h.flags));
    if (h.size > kMaxPayload)
        return fail("oversized", fmt::format("payload size {} exceeds {}", h.size, kMaxPayload));
    return h;
}

Status Connection::read_exact(std::byte* data, std::size_t len)
{
    while (len > 0) {
        pollfd p{sock_.get(), POLLIN, 0};
        if (poll(&p, 1, kPayloadTimeoutMs) <= 0)
            return fail("truncated", "message stopped part-way (timeout)");
        const ssize_t n = recv(sock_.get(), data, len, 0);
        if (n == 0)
            return fail("truncated", "connection closed part-way through a message");
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return fail("io", fmt::format("recv: {}", strerror(errno)));
        }
        data += n;
        len -= std::size_t(n);
    }
    return {};
}

Status Connection::receive(Message& msg)
{
    msg.fds.clear();
    std::array<std::byte, sizeof(Header)> raw{};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * (kMaxFds + 1))];
    iovec iov{raw.data(), raw.size()};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof(control);
    ssize_t n;
    do {
        n = recvmsg(sock_.get(), &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n == 0)
        return fail("peer_closed", "front-end closed the connection");
    if (n < 0)
        return fail("io", fmt::format("recvmsg: {}", strerror(errno)));
    if (auto ok = take_fds(mh, msg.fds); !ok)
        return ok;
    if (std::size_t(n) < raw.size()) {
        if (auto ok = read_exact(raw.data() + n, raw.size() - std::size_t(n)); !ok)
            return ok;
    }
    auto header = parse_header(raw);
    if (!header)
        return std::unexpected(header.error());
    msg.header = *header;
    return read_exact(msg.payload.data(), msg.header.size);
}

Status Connection::reply(Request request, std::span<const std::byte> payload, int fd)
{
    std::array<std::byte, sizeof(Header) + kMaxPayload> buf{};
    const Header h{uint32_t(request), kVersion | kReplyFlag, uint32_t(payload.size())};
    std::memcpy(buf.data(), &h, sizeof(h));
    std::memcpy(buf.data() + sizeof(h), payload.data(), payload.size());
    const std::size_t len = sizeof(h) + payload.size();
    iovec iov{buf.data(), len};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int))> control{};
    if (fd >= 0) {
        mh.msg_control = control.data();
        mh.msg_controllen = control.size();
        cmsghdr* c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &fd, sizeof(fd));
    }
    const ssize_t n = sendmsg(sock_.get(), &mh, MSG_NOSIGNAL);
    if (n != ssize_t(len))
        return fail("io", fmt::format("send reply: {}", n < 0 ? strerror(errno) : "short write"));
    return {};
}

Status Connection::reply_u64(Request request, uint64_t value)
{
    return reply(request, std::as_bytes(std::span(&value, 1)));
}

}  // namespace vusw::vhost_user
