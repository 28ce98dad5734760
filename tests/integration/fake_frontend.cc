#include "fake_frontend.h"

#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>

namespace vusw::it {

namespace {

using Clock = std::chrono::steady_clock;
constexpr Millis kReplyTimeout{3000};
constexpr uint64_t kTwoMiB = 2ull << 20;

uint64_t round_up(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

}  // namespace

FakeFrontend::FakeFrontend(VhostConn conn, FrontendOptions opt)
    : conn_(std::move(conn)), opt_(opt) {
  uint64_t ring_bytes = SplitRing::footprint(opt_.ring_size);
  mem_.add(opt_.mem_gpa, round_up(2 * ring_bytes, kTwoMiB));
  rx_ = std::make_unique<SplitRing>(mem_, opt_.mem_gpa, opt_.ring_size);
  tx_ = std::make_unique<SplitRing>(mem_, opt_.mem_gpa + ring_bytes, opt_.ring_size);
  for (size_t i = 0; i < 2; ++i) {
    kick_[i] = make_eventfd();
    call_[i] = make_eventfd();
    err_[i] = make_eventfd();
  }
}

std::unique_ptr<FakeFrontend> FakeFrontend::connect(const std::string& path, FrontendOptions opt) {
  auto conn = VhostConn::connect(path, Millis(5000));
  if (!conn) return nullptr;
  return std::make_unique<FakeFrontend>(std::move(*conn), opt);
}

// ---------------------------------------------------------------- protocol

Ack FakeFrontend::request(Req req, std::span<const std::byte> payload, std::span<const int> fds,
                          bool need_reply) {
  bool wait = need_reply && reply_ack();
  uint32_t flags = kVersion1 | (wait ? kFlagNeedReply : 0);
  if (!conn_.send(static_cast<uint32_t>(req), flags, payload, fds)) return {AckStatus::Closed, 0};
  if (!wait) return {AckStatus::NotRequested, 0};
  return read_ack(req);
}

Ack FakeFrontend::read_ack(Req req) {
  RecvResult r = conn_.recv(kReplyTimeout);
  if (r.status == RecvStatus::Timeout) return {AckStatus::Timeout, 0};
  if (r.status == RecvStatus::Closed) return {AckStatus::Closed, 0};
  const MsgHeader& h = r.msg.hdr;
  if (h.request != static_cast<uint32_t>(req) || h.flags != (kVersion1 | kFlagReply) ||
      h.size != sizeof(uint64_t) || !r.msg.fds.empty()) {
    anomalies_.push_back("bad ack for request " + std::to_string(static_cast<uint32_t>(req)) +
                         ": code " + std::to_string(h.request) + " flags " + std::to_string(h.flags) +
                         " size " + std::to_string(h.size) + " fds " + std::to_string(r.msg.fds.size()));
    return {AckStatus::Acked, ~0ull};
  }
  uint64_t v;
  std::memcpy(&v, r.msg.payload.data(), sizeof(v));
  return {AckStatus::Acked, v};
}

std::optional<uint64_t> FakeFrontend::get_u64(Req req) {
  if (!conn_.send(static_cast<uint32_t>(req), kVersion1, {})) return std::nullopt;
  Ack a = read_ack(req);
  if (a.status != AckStatus::Acked) return std::nullopt;
  return a.value;
}

bool FakeFrontend::sync() {
  auto f = get_u64(Req::GetFeatures);
  return f && *f == backend_features_;
}

void FakeFrontend::negotiate_protocol_features() {
  backend_protocol_features_ = get_u64(Req::GetProtocolFeatures).value_or(0);
  uint64_t want = pfeat::kMq | (opt_.reply_ack ? pfeat::kReplyAck : 0) |
                  (opt_.mem_slots ? pfeat::kConfigureMemSlots : 0);
  uint64_t pf = want & backend_protocol_features_;
  request(Req::SetProtocolFeatures, bytes_of(pf), {}, false);
  protocol_features_ = pf;  // REPLY_ACK applies from the next message on
  if (pf & pfeat::kMq) {
    auto qn = get_u64(Req::GetQueueNum);
    if (!qn || *qn < 1) anomalies_.push_back("GET_QUEUE_NUM: no queue pair");
  }
  if (pf & pfeat::kConfigureMemSlots) max_mem_slots_ = get_u64(Req::GetMaxMemSlots).value_or(0);
}

bool FakeFrontend::handshake() {
  auto f = get_u64(Req::GetFeatures);
  if (!f) return false;
  backend_features_ = *f;
  if (!(backend_features_ & feat::kVersion1)) anomalies_.push_back("VERSION_1 not offered");
  uint64_t want = (opt_.version1 ? feat::kVersion1 : 0) | feat::kProtocolFeatures |
                  (opt_.mrg_rxbuf ? feat::kMrgRxbuf : 0) | (opt_.indirect ? feat::kIndirectDesc : 0) |
                  (opt_.in_order ? feat::kInOrder : 0);
  features_ = want & backend_features_;
  if (features_ & feat::kProtocolFeatures) negotiate_protocol_features();
  bool ok = request(Req::SetOwner, {}, {}, opt_.ack_all).ok();
  // QEMU sends CALL/ERR fds and enables both rings right at connect, before memory.
  for (uint32_t i : {kRxRing, kTxRing}) {
    ok &= set_vring_fd(Req::SetVringCall, i, call_[i].get()).ok();
    ok &= set_vring_fd(Req::SetVringErr, i, err_[i].get()).ok();
  }
  if (features_ & feat::kProtocolFeatures)
    for (uint32_t i : {kRxRing, kTxRing}) ok &= set_vring_enable(i, true).ok();
  ok &= request(Req::SetFeatures, bytes_of(features_), {}, opt_.ack_all).ok();
  return ok && sync();
}

bool FakeFrontend::bring_up() {
  if (!handshake() || !send_memory().ok()) return false;
  if (!start_ring(kRxRing) || !start_ring(kTxRing)) return false;
  fill_rx();
  return sync() && anomalies_.empty();
}

Ack FakeFrontend::add_mem_reg_raw(const MemRegionDesc& d, std::span<const int> fds, bool need_reply) {
  MemRegMsg m{0, d};
  return request(Req::AddMemReg, bytes_of(m), fds, need_reply);
}

Ack FakeFrontend::rem_mem_reg_raw(const MemRegionDesc& d, std::span<const int> fds, bool need_reply) {
  MemRegMsg m{0, d};
  return request(Req::RemMemReg, bytes_of(m), fds, need_reply);
}

Ack FakeFrontend::set_mem_table(std::span<const MemRegion* const> regions) {
  MemTableMsg m{};
  std::vector<int> fds;
  for (const MemRegion* r : regions) {
    if (m.nregions == kMaxMemTableRegions) break;
    m.regions[m.nregions++] = r->desc();
    fds.push_back(r->fd());
  }
  // QEMU sends only the used part of the table: header + nregions entries.
  size_t len = offsetof(MemTableMsg, regions) + m.nregions * sizeof(MemRegionDesc);
  return request(Req::SetMemTable, bytes_of(m).first(len), fds);
}

Ack FakeFrontend::send_memory() {
  if (!(protocol_features_ & pfeat::kConfigureMemSlots)) {
    std::vector<const MemRegion*> rs;
    for (const auto& r : mem_.regions()) rs.push_back(r.get());
    return set_mem_table(rs);
  }
  for (const auto& r : mem_.regions())
    if (Ack a = add_mem_reg(*r); !a.ok()) return a;
  return {};
}

Ack FakeFrontend::vring_state(Req req, uint32_t index, uint32_t num) {
  VringState s{index, num};
  return request(req, bytes_of(s), {}, opt_.ack_all);
}

Ack FakeFrontend::set_vring_fd(Req req, uint32_t index, int fd) {
  uint64_t v = index | (fd < 0 ? kVringNoFd : 0);
  if (fd < 0) return request(req, bytes_of(v), {}, opt_.ack_all);
  return request(req, bytes_of(v), std::array{fd}, opt_.ack_all);
}

std::optional<VringState> FakeFrontend::get_vring_base(uint32_t index) {
  VringState s{index, 0};
  if (!conn_.send(static_cast<uint32_t>(Req::GetVringBase), kVersion1, bytes_of(s))) return std::nullopt;
  RecvResult r = conn_.recv(kReplyTimeout);
  if (r.status != RecvStatus::Ok || r.msg.payload.size() != sizeof(VringState)) return std::nullopt;
  std::memcpy(&s, r.msg.payload.data(), sizeof(s));
  return s;
}

bool FakeFrontend::start_ring(uint32_t index) {
  SplitRing& ring = index == kRxRing ? *rx_ : *tx_;
  return set_vring_num(index, ring.size()).ok() && set_vring_base(index, ring.used_idx()).ok() &&
         set_vring_addr(ring.vring_addr(index)).ok() &&
         set_vring_fd(Req::SetVringKick, index, kick_[index].get()).ok() &&
         set_vring_fd(Req::SetVringCall, index, call_[index].get()).ok();
}

// ---------------------------------------------------------------- net device

void FakeFrontend::kick(uint32_t ring) {
  uint64_t one = 1;
  // EAGAIN only if the counter is saturated, which still means "kicked".
  [[maybe_unused]] ssize_t n = ::write(kick_[ring].get(), &one, sizeof(one));
}

uint32_t FakeFrontend::tx_hdr_write(std::byte* dst) const {
  VirtioNetHdr h{};  // no offloads: all zero; num_buffers is ignored on TX
  std::memcpy(dst, &h, hdr_len());
  return hdr_len();
}

bool FakeFrontend::send_frame(std::span<const std::byte> frame, TxLayout layout) {
  uint16_t need = layout == TxLayout::Chained ? 2 : 1;
  if (tx_->num_free() < need) reclaim_tx();
  if (tx_->num_free() < need || frame.size() + 64 > SplitRing::kSlotSize) return false;
  std::vector<uint16_t> d = tx_->peek_free(need);
  std::byte* s0 = tx_->slot(d[0]);
  auto flen = static_cast<uint32_t>(frame.size());
  const uint32_t hdr = hdr_len();
  tx_hdr_write(s0);
  if (layout == TxLayout::Single) {
    std::memcpy(s0 + hdr, frame.data(), frame.size());
    Seg seg{tx_->slot_gpa(d[0]), hdr + flen, false};
    return tx_->post_chain(std::span(&seg, 1)).has_value();
  }
  if (layout == TxLayout::Chained) {
    std::memcpy(tx_->slot(d[1]), frame.data(), frame.size());
    std::array segs{Seg{tx_->slot_gpa(d[0]), hdr, false}, Seg{tx_->slot_gpa(d[1]), flen, false}};
    return tx_->post_chain(segs).has_value();
  }
  std::memcpy(s0 + 64, frame.data(), frame.size());
  std::array segs{Seg{tx_->slot_gpa(d[0]), hdr, false}, Seg{tx_->slot_gpa(d[0]) + 64, flen, false}};
  return tx_->post_indirect(segs).has_value();
}

bool FakeFrontend::send_frame_at(std::span<const std::byte> frame, uint64_t gpa) {
  const uint32_t hdr = hdr_len();
  std::vector<std::byte> buf(hdr);
  tx_hdr_write(buf.data());
  buf.insert(buf.end(), frame.begin(), frame.end());
  if (tx_->num_free() == 0) reclaim_tx();
  if (!mem_.write(gpa, buf)) return false;
  Seg seg{gpa, static_cast<uint32_t>(buf.size()), false};
  return tx_->post_chain(std::span(&seg, 1)).has_value();
}

size_t FakeFrontend::reclaim_tx() { return tx_->reclaim().size(); }

void FakeFrontend::fill_rx() {
  while (rx_->num_free() > 0) {
    uint16_t d = rx_->peek_free(1).front();
    Seg seg{rx_->slot_gpa(d), opt_.rx_buf_len, true};
    rx_->post_chain(std::span(&seg, 1));
  }
  kick(kRxRing);
}

void FakeFrontend::rx_complete(const UsedEntry& e, std::vector<std::vector<std::byte>>& out) {
  if (e.id >= rx_->size() || e.len > opt_.rx_buf_len) {
    ++rx_errors_;
    return;
  }
  const std::byte* data = rx_->slot(static_cast<uint16_t>(e.id));
  if (rx_pending_left_ == 0) {  // first buffer of a frame: starts with the header
    VirtioNetHdr h{};
    if (e.len < hdr_len()) {
      ++rx_errors_;
      return;
    }
    std::memcpy(&h, data, hdr_len());
    bool mrg = features_ & feat::kMrgRxbuf;
    if (mrg && h.num_buffers == 0) ++rx_errors_;
    rx_pending_left_ = mrg && h.num_buffers > 0 ? h.num_buffers : 1;
    rx_pending_.assign(data + hdr_len(), data + e.len);
  } else {
    rx_pending_.insert(rx_pending_.end(), data, data + e.len);
  }
  if (--rx_pending_left_ == 0) out.push_back(std::move(rx_pending_));
}

std::vector<std::vector<std::byte>> FakeFrontend::poll_rx() {
  std::vector<std::vector<std::byte>> out;
  std::vector<UsedEntry> used = rx_->reclaim();
  for (const UsedEntry& e : used) rx_complete(e, out);
  if (!used.empty()) fill_rx();
  return out;
}

bool FakeFrontend::wait_call(uint32_t ring, Millis timeout) {
  pollfd p{call_[ring].get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  uint64_t v;
  [[maybe_unused]] ssize_t n = ::read(call_[ring].get(), &v, sizeof(v));
  return true;
}

std::vector<std::vector<std::byte>> FakeFrontend::wait_rx(size_t n, Millis timeout) {
  std::vector<std::vector<std::byte>> got;
  auto deadline = Clock::now() + timeout;
  while (got.size() < n && Clock::now() < deadline) {
    for (auto& f : poll_rx()) got.push_back(std::move(f));
    if (got.size() < n) wait_call(kRxRing, Millis(1));
  }
  return got;
}

}  // namespace vusw::it
