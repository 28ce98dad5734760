// An in-process vhost-user-net FRONT-END that behaves like QEMU 7.2 (see
// shared/qemu-7.2-notes.md): it negotiates features, hands memfd guest memory
// to the back-end (ADD_MEM_REG when CONFIGURE_MEM_SLOTS is negotiated, else
// SET_MEM_TABLE), starts its rings and drives them as a virtio-net guest
// would. Queue pair q has ring 2q (guest RX) and ring 2q+1 (guest TX); with
// more than one pair it negotiates VIRTIO_NET_F_MQ. Every ring of a connection
// is split or packed (VIRTIO_F_RING_PACKED), chosen by FrontendOptions. Every
// message helper also has a raw form so tests can send what a broken or
// hostile front-end would.
#pragma once

#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fake_memory.h"
#include "packed_ring.h"
#include "split_ring.h"
#include "vhost_conn.h"

namespace vusw::it {

inline constexpr uint32_t kRxRing = 0;
inline constexpr uint32_t kTxRing = 1;
// Rings of queue pair q.
constexpr uint32_t rx_ring(uint16_t q) { return 2u * q; }
constexpr uint32_t tx_ring(uint16_t q) { return 2u * q + 1; }
inline constexpr uint32_t kNetHdrLen = sizeof(VirtioNetHdr);

enum class TxLayout { Single, Chained, Indirect };

// When the driver kicks a ring after making buffers available (notify()).
enum class Kicks {
  Always,    // after every burst, whatever the device asked (QEMU's and DPDK's polling back-ends are kicked anyway)
  Never,     // never: a driver that counts on the device polling
  WhenAsked  // only if the device's suppression (NO_NOTIFY, avail_event, device event) asks for it, as Linux does
};

struct FrontendOptions {
  bool mrg_rxbuf = true;
  bool indirect = true;
  bool reply_ack = true;
  bool mem_slots = true;       // negotiate CONFIGURE_MEM_SLOTS
  bool in_order = false;       // negotiate VIRTIO_F_IN_ORDER (DPDK virtio-user's default)
  bool version1 = true;        // false: a legacy device, 10-byte virtio-net header without MRG_RXBUF
  bool packed = false;          // negotiate VIRTIO_F_RING_PACKED and drive packed rings
  bool event_idx = false;       // negotiate VIRTIO_RING_F_EVENT_IDX
  uint16_t queue_pairs = 1;     // > 1: negotiate VIRTIO_NET_F_MQ and set up that many pairs
  uint16_t ring_size = 256;     // split rings: a power of two; packed: any size up to 32768
  uint32_t rx_buf_len = 2048;  // below 1526 a 1500 B frame spans buffers (MRG_RXBUF)
  // Descriptors per RX buffer: > 1 posts each buffer as one chain of that many
  // device-writable descriptors of rx_buf_len / rx_chain bytes (e.g. 4 x 512 B).
  uint16_t rx_chain = 1;
  Kicks kicks = Kicks::Always;
  uint64_t mem_gpa = 0x40000000;
  // NEED_REPLY on every ring/owner/feature message (tests want a verdict for
  // each). false = QEMU 7.2's flags: NEED_REPLY on memory messages only.
  bool ack_all = true;
  // virtio-net offload features to ask for as well (CSUM, HOST_TSO4, GUEST_USO4, ...:
  // vhost_wire.h feat::), when the back-end offers them.
  uint64_t offloads = 0;
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
  // GET_QUEUE_NUM's answer (queue pairs the back-end supports); 0 if not asked.
  uint64_t queue_num() const { return queue_num_; }
  uint16_t queue_pairs() const { return opt_.queue_pairs; }
  uint32_t num_rings() const { return static_cast<uint32_t>(rings_.size()); }
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
  // NET_SET_MTU (protocol feature NET_MTU, which this front-end asks for, as QEMU does
  // with host_mtu=); with REPLY_ACK the back-end's verdict.
  Ack net_set_mtu(uint64_t mtu) { return request(Req::NetSetMtu, bytes_of(mtu)); }

  // QEMU's connect sequence up to and including SET_FEATURES.
  bool handshake();
  // handshake + memory + every ring started + RX buffers posted.
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
  // Live migration, as QEMU runs it (vhost_dev_set_log): SET_LOG_BASE hands over the
  // dirty log (an fd, its size and offset) and waits for the reply; set_logging(true)
  // sends SET_FEATURES with VHOST_F_LOG_ALL, then SET_VRING_ADDR with VHOST_VRING_F_LOG
  // for every ring; set_logging(false) the same without them.
  Ack set_log_base(int fd, uint64_t size, uint64_t offset = 0);
  bool set_logging(bool on);
  // Postcopy, as a destination QEMU runs it (PAGEFAULT negotiated): ADVISE returns the
  // back-end's userfaultfd (invalid if none came); LISTEN and END are answered with a u64
  // whether REPLY_ACK was negotiated or not.
  UniqueFd postcopy_advise();
  Ack postcopy_listen() { return postcopy_request(Req::PostcopyListen); }
  Ack postcopy_end() { return postcopy_request(Req::PostcopyEnd); }
  // SEND_RARP (protocol feature RARP): what a destination QEMU sends after the switch-over
  // for a guest without GUEST_ANNOUNCE; the MAC in the payload's first 6 bytes.
  Ack send_rarp(const std::array<uint8_t, 6>& mac) {
    uint64_t payload = 0;
    std::memcpy(&payload, mac.data(), mac.size());
    return request(Req::SendRarp, bytes_of(payload), {}, opt_.ack_all);
  }
  // While listening, ADD_MEM_REG is answered with the region at the back-end's own
  // address (returned; nullopt on a bad reply), and QEMU then acknowledges the update
  // with the last request's code and a u64 0 (postcopy_memory_done()).
  std::optional<uint64_t> add_mem_reg_postcopy(const MemRegion& r);
  bool postcopy_memory_done(Req last);
  // SET_VRING_NUM/BASE/ADDR/KICK/CALL for one ring, as QEMU does. The base is
  // the ring's vring_base() (a device that returned all it consumed) unless given.
  bool start_ring(uint32_t index, std::optional<uint32_t> base = std::nullopt);
  // Stops ring `index` (GET_VRING_BASE), gives the driver a fresh zeroed ring in
  // the same memory, starts it again (RX: with all buffers posted). What a guest
  // driver does after it broke its ring; false if a message failed.
  bool reset_ring(uint32_t index);

  // ---- net device ----
  GuestMemory& mem() { return mem_; }
  MemRegion& main_region() { return *mem_.regions().front(); }
  DriverRing& ring(uint32_t index) { return *rings_.at(index); }
  DriverRing& rx(uint16_t q = 0) { return ring(rx_ring(q)); }
  DriverRing& tx(uint16_t q = 0) { return ring(tx_ring(q)); }
  // The ring as its own type, for raw access; throws if it is the other type.
  SplitRing& split(uint32_t index);
  PackedRing& packed(uint32_t index);
  int kick_fd(uint32_t ring) const { return kick_.at(ring).get(); }
  int call_fd(uint32_t ring) const { return call_.at(ring).get(); }
  void kick(uint32_t ring);
  // Kicks `ring` if options().kicks says so for the buffers made available since the last notify().
  void notify(uint32_t ring);

  // The virtio-net header sent before every following TX frame (all zero until set:
  // no offload requests).
  void set_tx_header(const VirtioNetHdr& h) { tx_header_ = h; }
  // The header of every frame received so far, in order of arrival (num_buffers as sent).
  const std::vector<VirtioNetHdr>& rx_headers() const { return rx_headers_; }
  void clear_rx_headers() { rx_headers_.clear(); }

  // Queues one frame on TX queue q (no kick); false if the ring stays full.
  bool send_frame(std::span<const std::byte> frame, TxLayout layout, uint16_t q = 0);
  // Queues one frame in one TX buffer after the virtio-net header `h` (offload requests:
  // FrontendOptions::offloads), instead of set_tx_header()'s; false if the ring stays full or the frame is too long.
  bool send_frame_hdr(std::span<const std::byte> frame, const VirtioNetHdr& h, uint16_t q = 0);
  // Queues one frame whose single TX buffer (header + frame) is at `gpa`, which
  // may be any guest memory, even spanning two GPA-adjacent regions.
  bool send_frame_at(std::span<const std::byte> frame, uint64_t gpa, uint16_t q = 0);
  // Reclaims every TX queue; returns the used entries seen.
  size_t reclaim_tx();
  // Posts empty buffers until the RX ring is full, then notify()s it: every queue, or queue q.
  void fill_rx();
  void fill_rx(uint16_t q);
  // Frames completed since the last call (RX buffers are reposted): every queue, or queue q.
  std::vector<std::vector<std::byte>> poll_rx();
  std::vector<std::vector<std::byte>> poll_rx(uint16_t q);
  // Polls until `n` frames arrived or timeout; returns what arrived.
  std::vector<std::vector<std::byte>> wait_rx(size_t n, Millis timeout);
  // Waits up to `timeout` for the call eventfd of `ring` (drains it).
  bool wait_call(uint32_t ring, Millis timeout);
  // Waits up to `timeout` for any RX queue's call eventfd (drains those that fired).
  bool wait_rx_call(Millis timeout);
  // The RX buffer bytes the device said it wrote ({gpa, len} of every used entry with
  // len > 0), in order, since the last clear: what a dirty log must cover.
  const std::vector<std::pair<uint64_t, uint32_t>>& rx_written() const { return rx_written_; }
  void clear_rx_written() { rx_written_.clear(); }
  // Malformed RX completions seen (bad id, length, num_buffers).
  size_t rx_errors() const { return rx_errors_; }

 private:
  Ack vring_state(Req req, uint32_t index, uint32_t num);
  Ack postcopy_request(Req req);
  Ack read_ack(Req req);
  void negotiate_protocol_features();
  // A frame being assembled from merged RX buffers of one queue.
  struct RxPending {
    std::vector<std::byte> data;
    VirtioNetHdr header{};
    uint16_t left = 0;
  };
  std::unique_ptr<DriverRing> make_ring(uint32_t index) const;
  uint64_t ring_gpa(uint32_t index) const;
  void rx_complete(uint16_t q, const UsedEntry& e, std::vector<std::vector<std::byte>>& out);
  // The bytes of RX buffer `id` of queue q the device wrote (len of them, across its
  // segments), noted in rx_written_.
  std::span<const std::byte> rx_data(uint16_t q, uint32_t id, uint32_t len);
  std::vector<std::byte> rx_gather_;
  uint32_t tx_hdr_write(std::byte* dst, const VirtioNetHdr& h) const;

  VhostConn conn_;
  FrontendOptions opt_;
  GuestMemory mem_;
  std::vector<std::unique_ptr<DriverRing>> rings_;
  std::vector<UniqueFd> kick_, call_, err_;
  uint64_t backend_features_ = 0, features_ = 0;
  uint64_t backend_protocol_features_ = 0, protocol_features_ = 0;
  uint64_t max_mem_slots_ = 0;
  uint64_t queue_num_ = 0;
  std::vector<std::string> anomalies_;
  std::vector<RxPending> rx_pending_;
  // The segments of every RX buffer posted, by queue and buffer id (chains span slots).
  std::vector<std::vector<std::vector<Seg>>> rx_segs_;
  VirtioNetHdr tx_header_{};
  std::vector<VirtioNetHdr> rx_headers_;
  std::vector<std::pair<uint64_t, uint32_t>> rx_written_;
  size_t rx_errors_ = 0;
};

}  // namespace vusw::it
