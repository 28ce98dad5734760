#include "vhost_conn.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace vusw::it {

namespace {

using Clock = std::chrono::steady_clock;
// DPDK caps fds per message at 8, rust-vmm at 32; hostile tests send a few.
constexpr size_t kMaxFds = 32;

sockaddr_un unix_addr(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) throw std::invalid_argument("socket path too long");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

UniqueFd unix_socket() {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
  return UniqueFd(fd);
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

void take_fds(msghdr& mh, std::vector<UniqueFd>& fds) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.emplace_back(fd);
    }
  }
}

}  // namespace

std::optional<VhostConn> VhostConn::connect(const std::string& path, Millis timeout) {
  auto deadline = Clock::now() + timeout;
  sockaddr_un addr = unix_addr(path);
  do {
    UniqueFd fd = unix_socket();
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0)
      return VhostConn(std::move(fd));
    std::this_thread::sleep_for(Millis(20));
  } while (Clock::now() < deadline);
  return std::nullopt;
}

bool VhostConn::send_raw(std::span<const std::byte> bytes, std::span<const int> fds) {
  // A stream socket carries fds only alongside at least one data byte.
  if (!fd_ || fds.size() > kMaxFds || bytes.empty()) return false;
  iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (!fds.empty()) {
    mh.msg_control = ctrl;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::sendmsg(fd_.get(), &mh, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    sent += static_cast<size_t>(n);
    // Any remainder goes without the fds (they rode on the first chunk).
    iov = {const_cast<std::byte*>(bytes.data()) + sent, bytes.size() - sent};
    mh.msg_control = nullptr;
    mh.msg_controllen = 0;
  }
  return true;
}

bool VhostConn::send(uint32_t request, uint32_t flags, std::span<const std::byte> payload,
                     std::span<const int> fds) {
  MsgHeader hdr{request, flags, static_cast<uint32_t>(payload.size())};
  std::vector<std::byte> buf(sizeof(hdr) + payload.size());
  std::memcpy(buf.data(), &hdr, sizeof(hdr));
  if (!payload.empty()) std::memcpy(buf.data() + sizeof(hdr), payload.data(), payload.size());
  return send_raw(buf, fds);
}

RecvStatus VhostConn::read_exact(std::span<std::byte> buf, std::vector<UniqueFd>& fds,
                                 Clock::time_point deadline) {
  size_t got = 0;
  while (got < buf.size()) {
    pollfd p{fd_.get(), POLLIN, 0};
    int pr = ::poll(&p, 1, remaining_ms(deadline));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) return RecvStatus::Timeout;
    iovec iov{buf.data() + got, buf.size() - got};
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * kMaxFds)];
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctrl;
    mh.msg_controllen = sizeof(ctrl);
    ssize_t n = ::recvmsg(fd_.get(), &mh, MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return RecvStatus::Closed;
    take_fds(mh, fds);
    got += static_cast<size_t>(n);
  }
  return RecvStatus::Ok;
}

RecvResult VhostConn::recv(Millis timeout) {
  RecvResult r;
  if (!fd_) {
    r.status = RecvStatus::Closed;
    return r;
  }
  auto deadline = Clock::now() + timeout;
  r.status = read_exact(std::as_writable_bytes(std::span(&r.msg.hdr, 1)), r.msg.fds, deadline);
  if (r.status != RecvStatus::Ok) return r;
  // A reply never needs more than a memory table; refuse to allocate more.
  if (r.msg.hdr.size > 4096) {
    r.status = RecvStatus::Closed;
    return r;
  }
  r.msg.payload.resize(r.msg.hdr.size);
  r.status = read_exact(r.msg.payload, r.msg.fds, deadline);
  return r;
}

bool VhostConn::wait_closed(Millis timeout) {
  auto deadline = Clock::now() + timeout;
  while (fd_) {
    pollfd p{fd_.get(), POLLIN, 0};
    int pr = ::poll(&p, 1, remaining_ms(deadline));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) return false;
    std::byte sink[512];
    ssize_t n = ::recv(fd_.get(), sink, sizeof(sink), 0);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return true;
  }
  return true;
}

VhostListener::VhostListener(std::string path) : path_(std::move(path)), fd_(unix_socket()) {
  ::unlink(path_.c_str());
  sockaddr_un addr = unix_addr(path_);
  if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd_.get(), 4) != 0)
    throw std::runtime_error("listen " + path_ + ": " + std::strerror(errno));
}

VhostListener::~VhostListener() { ::unlink(path_.c_str()); }

std::optional<VhostConn> VhostListener::accept(Millis timeout) {
  pollfd p{fd_.get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
  int fd = ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return std::nullopt;
  return VhostConn(UniqueFd(fd));
}

}  // namespace vusw::it
