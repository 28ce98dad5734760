// One vhost-user connection seen from the front-end side: raw framed messages
// with SCM_RIGHTS fds, replies read with a deadline, and detection of the
// daemon closing the socket. Tests use the raw calls to craft hostile input.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fake_memory.h"
#include "vhost_wire.h"

namespace vusw::it {

using Millis = std::chrono::milliseconds;

struct Message {
  MsgHeader hdr{};
  std::vector<std::byte> payload;
  std::vector<UniqueFd> fds;
};

enum class RecvStatus { Ok, Timeout, Closed };

struct RecvResult {
  RecvStatus status = RecvStatus::Timeout;
  Message msg;
};

template <class T>
std::span<const std::byte> bytes_of(const T& v) {
  return std::as_bytes(std::span<const T, 1>(&v, 1));
}

class VhostConn {
 public:
  // Connects to a listening unix socket, retrying until it exists or timeout.
  static std::optional<VhostConn> connect(const std::string& path, Millis timeout);
  explicit VhostConn(UniqueFd fd) : fd_(std::move(fd)) {}

  // Writes bytes as they are (one sendmsg carrying `fds`). False if the peer is gone.
  bool send_raw(std::span<const std::byte> bytes, std::span<const int> fds = {});
  // Header {request, flags, payload.size()} + payload.
  bool send(uint32_t request, uint32_t flags, std::span<const std::byte> payload,
            std::span<const int> fds = {});
  // One whole message, or Timeout / Closed.
  RecvResult recv(Millis timeout);
  // True if the peer closes within timeout (anything it sends meanwhile is dropped).
  bool wait_closed(Millis timeout);
  void close() { fd_.reset(); }
  int fd() const { return fd_.get(); }

 private:
  // Reads exactly buf.size() bytes, collecting fds. Status Ok/Timeout/Closed.
  RecvStatus read_exact(std::span<std::byte> buf, std::vector<UniqueFd>& fds,
                        std::chrono::steady_clock::time_point deadline);
  UniqueFd fd_;
};

// Listening socket for --vhost-user-client mode (the daemon connects to us).
class VhostListener {
 public:
  explicit VhostListener(std::string path);
  ~VhostListener();
  VhostListener(const VhostListener&) = delete;
  VhostListener& operator=(const VhostListener&) = delete;
  std::optional<VhostConn> accept(Millis timeout);

 private:
  std::string path_;
  UniqueFd fd_;
};

}  // namespace vusw::it
