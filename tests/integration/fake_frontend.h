// An in-process vhost-user-net FRONT-END that behaves like QEMU 7.2 (see
// shared/qemu-7.2-notes.md): it negotiates features, hands memfd guest memory
// to the back-end (ADD_MEM_REG when CONFIGURE_MEM_SLOTS is negotiated, else
// SET_MEM_TABLE), starts ring 0 (guest RX) and ring 1 (guest TX), and drives
// them as a virtio-net guest would. Every message helper also has a raw form
// so tests can send what a broken or hostile front-end would.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fake_memory.h"
#include "split_ring.h"
#include "vhost_conn.h"

namespace vusw::it {

inline constexpr uint32_t kRxRing = 0;
inline constexpr uint32_t kTxRing = 1;
inline constexpr uint32_t kNetHdrLen = sizeof(VirtioNetHdr);

enum class TxLayout { Single, Chained, Indirect };

struct FrontendOptions {
  bool mrg_rxbuf = true;
  bool indirect = true;
  bool reply_ack = true;
  bool mem_slots = true;       // negotiate CONFIGURE_MEM_SLOTS
  bool in_order = false;       // negotiate VIRTIO_F_IN_ORDER (DPDK virtio-user's default)
  bool version1 = true;        // false: a legacy device, 10-byte virtio-net header without MRG_RXBUF
  uint16_t ring_size = 256;
  uint32_t rx_buf_len = 2048;  // below 1526 a 1500 B frame spans buffers (MRG_RXBUF)
  uint64_t mem_gpa = 0x40000000;
  // NEED_REPLY on every ring/owner/feature message (tests want a verdict for
  // each). false = QEMU 7.2's flags: NEED_REPLY on memory messages only.
  bool ack_all = true;
};

// Outcome of one request.
enum class AckStatus { Acked, NotRequested, Timeout, Closed };
struct Ack {
  AckStatus status = AckStatus::NotRequested;
  uint64_t value = 0;
  bool ok() const { return status == AckStatus::NotRequested || (status == AckStatus::Acked && value == 0); }
  bool failed() const { return status == AckStatus::Acked && value != 0; }
};

class FakeFrontend {
 public:
  FakeFrontend(VhostConn conn, FrontendOptions opt = {});
  // Connects to a server socket; nullptr if nothing listens within 5 s.
  static std::unique_ptr<FakeFrontend> connect(const std::string& path, FrontendOptions opt = {});

  // ---- protocol ----
  VhostConn& conn() { return conn_; }
  const FrontendOptions& options() const { return opt_; }
  uint64_t features() const { return features_; }
  // virtio-net header bytes: 12 with VERSION_1 or MRG_RXBUF, 10 otherwise.
  uint32_t hdr_len() const { return features_ & (feat::kVersion1 | feat::kMrgRxbuf) ? kNetHdrLen : 10; }
  uint64_t protocol_features() const { return protocol_features_; }
  uint64_t max_mem_slots() const { return max_mem_slots_; }
  bool reply_ack() const { return (protocol_features_ & pfeat::kReplyAck) != 0; }
  // Replies that broke the spec (wrong code, flags or size); tests expect none.
  const std::vector<std::string>& anomalies() const { return anomalies_; }

  // Sends `req`; with need_reply and REPLY_ACK negotiated sets NEED_REPLY and waits for the u64.
  Ack request(Req req, std::span<const std::byte> payload, std::span<const int> fds = {},
              bool need_reply = true);
  // A request whose reply is a u64 (GET_FEATURES, GET_MAX_MEM_SLOTS, ...).
  std::optional<uint64_t> get_u64(Req req);
  // Round trip that proves every earlier message was processed.
  bool sync();

  // QEMU's connect sequence up to and including SET_FEATURES.
  bool handshake();
  // handshake + memory + both rings started + RX buffers posted.
  bool bring_up();

  Ack add_mem_reg(const MemRegion& r) { return add_mem_reg_raw(r.desc(), std::array{r.fd()}); }
  Ack add_mem_reg_raw(const MemRegionDesc& d, std::span<const int> fds, bool need_reply = true);
  Ack rem_mem_reg(const MemRegion& r) { return rem_mem_reg_raw(r.desc(), {}); }
  Ack rem_mem_reg_raw(const MemRegionDesc& d, std::span<const int> fds, bool need_reply = true);
  Ack set_mem_table(std::span<const MemRegion* const> regions);
  // The memory message this front-end would send for its current regions.
  Ack send_memory();

  Ack set_vring_num(uint32_t index, uint32_t num) { return vring_state(Req::SetVringNum, index, num); }
  Ack set_vring_base(uint32_t index, uint32_t num) { return vring_state(Req::SetVringBase, index, num); }
  Ack set_vring_enable(uint32_t index, bool on) { return vring_state(Req::SetVringEnable, index, on); }
  Ack set_vring_addr(const VringAddr& a) { return request(Req::SetVringAddr, bytes_of(a), {}, opt_.ack_all); }
  Ack set_vring_fd(Req req, uint32_t index, int fd);
  std::optional<VringState> get_vring_base(uint32_t index);
  // SET_VRING_NUM/BASE/ADDR/KICK/CALL for one ring, as QEMU does. The base is
  // the used index: an in-order device has consumed exactly what it returned.
  bool start_ring(uint32_t index);

  // ---- net device ----
  GuestMemory& mem() { return mem_; }
  MemRegion& main_region() { return *mem_.regions().front(); }
  SplitRing& rx() { return *rx_; }
  SplitRing& tx() { return *tx_; }
  int kick_fd(uint32_t ring) const { return kick_[ring].get(); }
  int call_fd(uint32_t ring) const { return call_[ring].get(); }
  void kick(uint32_t ring);

  // Queues one frame on the TX ring (no kick); false if the ring stays full.
  bool send_frame(std::span<const std::byte> frame, TxLayout layout);
  // Queues one frame whose single TX buffer (header + frame) is at `gpa`, which
  // may be any guest memory, even spanning two GPA-adjacent regions.
  bool send_frame_at(std::span<const std::byte> frame, uint64_t gpa);
  size_t reclaim_tx();
  // Posts empty buffers until the RX ring is full, then kicks it.
  void fill_rx();
  // Frames completed since the last call (RX buffers are reposted).
  std::vector<std::vector<std::byte>> poll_rx();
  // Polls until `n` frames arrived or timeout; returns what arrived.
  std::vector<std::vector<std::byte>> wait_rx(size_t n, Millis timeout);
  // Waits up to `timeout` for the call eventfd of `ring` (drains it).
  bool wait_call(uint32_t ring, Millis timeout);
  // Malformed RX completions seen (bad id, length, num_buffers).
  size_t rx_errors() const { return rx_errors_; }

 private:
  Ack vring_state(Req req, uint32_t index, uint32_t num);
  Ack read_ack(Req req);
  void negotiate_protocol_features();
  void rx_complete(const UsedEntry& e, std::vector<std::vector<std::byte>>& out);
  uint32_t tx_hdr_write(std::byte* dst) const;

  VhostConn conn_;
  FrontendOptions opt_;
  GuestMemory mem_;
  std::unique_ptr<SplitRing> rx_, tx_;
  std::array<UniqueFd, 2> kick_, call_, err_;
  uint64_t backend_features_ = 0, features_ = 0;
  uint64_t backend_protocol_features_ = 0, protocol_features_ = 0;
  uint64_t max_mem_slots_ = 0;
  std::vector<std::string> anomalies_;
  std::vector<std::byte> rx_pending_;
  uint16_t rx_pending_left_ = 0;
  size_t rx_errors_ = 0;
};

}  // namespace vusw::it
