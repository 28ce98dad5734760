// vhost-user framing.
#include "control/vhost_user/connection.h"

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace vusw::vhost_user {
namespace {

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
        // MSG_CTRUNC also means the kernel could not install them all: we are out of fds.
        return fail("too_many_fds", fmt::format("message carried more than {} fds, or more than the daemon could "
                                                "open (is it at its fd limit?)", kMaxFds));
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

// Reads at most the rest of the message being assembled, never into the next one: a
// front-end may send a message in as many pieces as it likes (SCM_RIGHTS fds ride on
// whichever byte it chose, normally the first), and the control thread must not wait for
// the missing pieces while other ports and the control socket need it.
Result<bool> Connection::receive(Message& msg)
{
    for (;;) {
        const std::size_t want = (have_ < sizeof(Header) ? sizeof(Header) : sizeof(Header) + pending_.size) - have_;
        auto got = recv_some(want);
        if (!got)
            return std::unexpected(got.error());
        if (*got == 0)
            return false;  // nothing more yet: the rest comes with a later wake-up
        if (have_ == sizeof(Header)) {
            auto header = parse_header(std::span(buf_).first(sizeof(Header)));
            if (!header)
                return std::unexpected(header.error());
            pending_ = *header;
        }
        if (have_ == sizeof(Header) + pending_.size)
            return take_message(msg);
    }
}

bool Connection::take_message(Message& msg)
{
    msg.header = pending_;
    std::memcpy(msg.payload.data(), buf_.data() + sizeof(Header), pending_.size);
    msg.fds = std::move(fds_);
    fds_.clear();
    have_ = 0;
    return true;
}

// One non-blocking recvmsg of up to `len` bytes into the message buffer, keeping any fds.
// Returns the bytes read (0: none available now).
Result<std::size_t> Connection::recv_some(std::size_t len)
{
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * (kMaxFds + 1))];
    iovec iov{buf_.data() + have_, len};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof(control);
    ssize_t n;
    do {
        n = recvmsg(sock_.get(), &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (n < 0)
        return fail("io", fmt::format("recvmsg: {}", strerror(errno)));
    if (auto ok = take_fds(mh, fds_); !ok)
        return std::unexpected(ok.error());
    if (n == 0 && have_ == 0)
        return fail("peer_closed", "front-end closed the connection");
    if (n == 0)
        return fail("truncated", fmt::format("connection closed part-way through a message ({} bytes of it arrived)", have_));
    have_ += std::size_t(n);
    return std::size_t(n);
}

Status Connection::reply(Request request, std::span<const std::byte> payload, int fd)
{
    std::array<std::byte, sizeof(Header) + kMaxPayload> buf{};
    const Header h{uint32_t(request), kVersion | kReplyFlag, uint32_t(payload.size())};
    std::memcpy(buf.data(), &h, sizeof(h));
    if (!payload.empty())  // an empty span may have no data(): memcpy from null is undefined
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
