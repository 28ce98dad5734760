#include "fake_frontend.h"

#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>

namespace vusw::it {

namespace {

using Clock = std::chrono::steady_clock;
constexpr Millis kReplyTimeout{3000};
constexpr uint64_t kTwoMiB = 2ull << 20;

uint64_t round_up(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

}  // namespace

FakeFrontend::FakeFrontend(VhostConn conn, FrontendOptions opt)
    : conn_(std::move(conn)), opt_(opt), rx_pending_(opt.queue_pairs),
      rx_segs_(opt.queue_pairs, std::vector<std::vector<Seg>>(opt.ring_size)) {
  if (opt_.queue_pairs == 0) throw std::invalid_argument("no queue pair");
  if (opt_.rx_chain == 0 || opt_.rx_chain > opt_.ring_size || opt_.rx_buf_len % opt_.rx_chain != 0 ||
      opt_.rx_buf_len / opt_.rx_chain > DriverRing::kSlotSize)
    throw std::invalid_argument("rx_chain must divide rx_buf_len into segments of at most one slot");
  const uint32_t n = 2u * opt_.queue_pairs;
  mem_.add(opt_.mem_gpa, round_up(ring_gpa(n) - opt_.mem_gpa, kTwoMiB));
  for (uint32_t i = 0; i < n; ++i) {
    rings_.push_back(make_ring(i));
    kick_.push_back(make_eventfd());
    call_.push_back(make_eventfd());
    err_.push_back(make_eventfd());
  }
}

uint64_t FakeFrontend::ring_gpa(uint32_t index) const {
  uint64_t bytes = opt_.packed ? PackedRing::footprint(opt_.ring_size) : SplitRing::footprint(opt_.ring_size);
  return opt_.mem_gpa + index * bytes;
}

std::unique_ptr<DriverRing> FakeFrontend::make_ring(uint32_t index) const {
  if (opt_.packed) return std::make_unique<PackedRing>(mem_, ring_gpa(index), opt_.ring_size);
  return std::make_unique<SplitRing>(mem_, ring_gpa(index), opt_.ring_size);
}

SplitRing& FakeFrontend::split(uint32_t index) {
  auto* r = dynamic_cast<SplitRing*>(&ring(index));
  if (r == nullptr) throw std::logic_error("ring " + std::to_string(index) + " is packed");
  return *r;
}

PackedRing& FakeFrontend::packed(uint32_t index) {
  auto* r = dynamic_cast<PackedRing*>(&ring(index));
  if (r == nullptr) throw std::logic_error("ring " + std::to_string(index) + " is split");
  return *r;
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
  uint64_t want = pfeat::kMq | pfeat::kNetMtu | pfeat::kLogShmfd | pfeat::kPagefault | pfeat::kRarp | (opt_.reply_ack ? pfeat::kReplyAck : 0) |
                  (opt_.mem_slots ? pfeat::kConfigureMemSlots : 0);
  uint64_t pf = want & backend_protocol_features_;
  request(Req::SetProtocolFeatures, bytes_of(pf), {}, false);
  protocol_features_ = pf;  // REPLY_ACK applies from the next message on
  if (pf & pfeat::kMq) {
    queue_num_ = get_u64(Req::GetQueueNum).value_or(0);
    if (queue_num_ < 1) anomalies_.push_back("GET_QUEUE_NUM: no queue pair");
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
                  (opt_.in_order ? feat::kInOrder : 0) | (opt_.packed ? feat::kRingPacked : 0) |
                  (opt_.event_idx ? feat::kEventIdx : 0) | (opt_.queue_pairs > 1 ? feat::kMq : 0) |
                  opt_.offloads;
  features_ = want & backend_features_;
  // Without these the rings this front-end set up cannot work: fail loudly.
  if (opt_.packed && !(features_ & feat::kRingPacked)) anomalies_.push_back("RING_PACKED not offered");
  if (opt_.queue_pairs > 1 && !(features_ & feat::kMq)) anomalies_.push_back("MQ not offered");
  if (!anomalies_.empty()) return false;
  for (auto& r : rings_) {
    r->set_event_idx((features_ & feat::kEventIdx) != 0);
    r->set_in_order((features_ & feat::kInOrder) != 0);
  }
  if (features_ & feat::kProtocolFeatures) negotiate_protocol_features();
  if (opt_.queue_pairs > 1 && queue_num_ < opt_.queue_pairs)
    anomalies_.push_back("GET_QUEUE_NUM " + std::to_string(queue_num_) + " < " + std::to_string(opt_.queue_pairs));
  if (!anomalies_.empty()) return false;
  bool ok = request(Req::SetOwner, {}, {}, opt_.ack_all).ok();
  // QEMU sends CALL/ERR fds and enables the rings right at connect, before memory.
  for (uint32_t i = 0; i < num_rings(); ++i) {
    ok &= set_vring_fd(Req::SetVringCall, i, call_[i].get()).ok();
    ok &= set_vring_fd(Req::SetVringErr, i, err_[i].get()).ok();
  }
  if (features_ & feat::kProtocolFeatures)
    for (uint32_t i = 0; i < num_rings(); ++i) ok &= set_vring_enable(i, true).ok();
  ok &= request(Req::SetFeatures, bytes_of(features_), {}, opt_.ack_all).ok();
  return ok && sync();
}

bool FakeFrontend::bring_up() {
  if (!handshake() || !send_memory().ok()) return false;
  for (uint32_t i = 0; i < num_rings(); ++i)
    if (!start_ring(i)) return false;
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

Ack FakeFrontend::set_log_base(int fd, uint64_t size, uint64_t offset) {
  const LogBaseMsg m{size, offset};
  const int fds[] = {fd};
  if (!conn_.send(static_cast<uint32_t>(Req::SetLogBase), kVersion1, bytes_of(m), fds)) return {AckStatus::Closed, 0};
  return read_ack(Req::SetLogBase);  // with LOG_SHMFD the back-end always replies
}

UniqueFd FakeFrontend::postcopy_advise() {
  if (!conn_.send(static_cast<uint32_t>(Req::PostcopyAdvise), kVersion1, {})) return {};
  RecvResult r = conn_.recv(kReplyTimeout);
  if (r.status != RecvStatus::Ok || r.msg.hdr.request != static_cast<uint32_t>(Req::PostcopyAdvise) ||
      r.msg.hdr.size != 0 || r.msg.fds.size() != 1) {
    anomalies_.push_back("bad POSTCOPY_ADVISE reply");
    return {};
  }
  return std::move(r.msg.fds[0]);
}

Ack FakeFrontend::postcopy_request(Req req) {
  if (!conn_.send(static_cast<uint32_t>(req), kVersion1 | kFlagNeedReply, {})) return {AckStatus::Closed, 0};
  return read_ack(req);
}

std::optional<uint64_t> FakeFrontend::add_mem_reg_postcopy(const MemRegion& r) {
  const MemRegMsg m{0, r.desc()};
  const int fds[] = {r.fd()};
  if (!conn_.send(static_cast<uint32_t>(Req::AddMemReg), kVersion1, bytes_of(m), fds)) return std::nullopt;
  RecvResult reply = conn_.recv(kReplyTimeout);
  MemRegMsg back{};
  if (reply.status != RecvStatus::Ok || reply.msg.hdr.request != static_cast<uint32_t>(Req::AddMemReg) ||
      reply.msg.payload.size() != sizeof(back)) {
    anomalies_.push_back("bad postcopy ADD_MEM_REG reply");
    return std::nullopt;
  }
  std::memcpy(&back, reply.msg.payload.data(), sizeof(back));
  if (back.region.guest_phys_addr != r.gpa() || back.region.memory_size != r.size()) {
    anomalies_.push_back("postcopy ADD_MEM_REG reply for another region");
    return std::nullopt;
  }
  return back.region.userspace_addr;
}

bool FakeFrontend::postcopy_memory_done(Req last) {
  const uint64_t ok = 0;
  return conn_.send(static_cast<uint32_t>(last), kVersion1, bytes_of(ok));
}

bool FakeFrontend::set_logging(bool on) {
  features_ = on ? features_ | feat::kLogAll : features_ & ~feat::kLogAll;
  bool ok = request(Req::SetFeatures, bytes_of(features_), {}, opt_.ack_all).ok();
  for (uint32_t i = 0; i < num_rings(); ++i) {
    VringAddr a = ring(i).vring_addr(i);
    if (on) {
      a.flags |= kVringFLog;
      a.log_guest_addr = ring(i).log_guest_addr();
    }
    ok &= set_vring_addr(a).ok();
  }
  return ok && sync();
}

bool FakeFrontend::start_ring(uint32_t index, std::optional<uint32_t> base) {
  DriverRing& r = ring(index);
  return set_vring_num(index, r.size()).ok() && set_vring_base(index, base.value_or(r.vring_base())).ok() &&
         set_vring_addr(r.vring_addr(index)).ok() &&
         set_vring_fd(Req::SetVringKick, index, kick_[index].get()).ok() &&
         set_vring_fd(Req::SetVringCall, index, call_[index].get()).ok();
}

bool FakeFrontend::reset_ring(uint32_t index) {
  if (!get_vring_base(index)) return false;
  rings_.at(index) = make_ring(index);
  rings_[index]->set_event_idx((features_ & feat::kEventIdx) != 0);
  rings_[index]->set_in_order((features_ & feat::kInOrder) != 0);
  if (index % 2 == 0) {
    rx_pending_.at(index / 2) = {};
    for (auto& segs : rx_segs_.at(index / 2)) segs.clear();
  }
  if (!start_ring(index)) return false;
  if (index % 2 == 0) fill_rx(static_cast<uint16_t>(index / 2));
  kick(index);
  return true;
}

// ---------------------------------------------------------------- net device

void FakeFrontend::notify(uint32_t index) {
  switch (opt_.kicks) {
    case Kicks::Always: kick(index); break;
    case Kicks::Never: break;
    case Kicks::WhenAsked:
      if (ring(index).kick_needed()) kick(index);
      break;
  }
}

void FakeFrontend::kick(uint32_t ring) {
  uint64_t one = 1;
  // EAGAIN only if the counter is saturated, which still means "kicked".
  [[maybe_unused]] ssize_t n = ::write(kick_.at(ring).get(), &one, sizeof(one));
}

uint32_t FakeFrontend::tx_hdr_write(std::byte* dst, const VirtioNetHdr& h) const {
  // All zero unless a test set offload requests; num_buffers is ignored on TX.
  std::memcpy(dst, &h, hdr_len());
  return hdr_len();
}

bool FakeFrontend::send_frame_hdr(std::span<const std::byte> frame, const VirtioNetHdr& h, uint16_t q) {
  DriverRing& t = tx(q);
  if (t.num_free() < 1) t.reclaim();
  if (t.num_free() < 1 || frame.size() + hdr_len() > DriverRing::kSlotSize) return false;
  const uint16_t d = t.peek_free(1).front();
  const uint32_t hdr = tx_hdr_write(t.slot(d), h);
  std::memcpy(t.slot(d) + hdr, frame.data(), frame.size());
  Seg seg{t.slot_gpa(d), hdr + static_cast<uint32_t>(frame.size()), false};
  return t.post_chain(std::span(&seg, 1)).has_value();
}

bool FakeFrontend::send_frame(std::span<const std::byte> frame, TxLayout layout, uint16_t q) {
  DriverRing& t = tx(q);
  uint16_t need = layout == TxLayout::Chained ? 2 : 1;
  if (t.num_free() < need) t.reclaim();
  if (t.num_free() < need || frame.size() + 64 > DriverRing::kSlotSize) return false;
  std::vector<uint16_t> d = t.peek_free(need);
  std::byte* s0 = t.slot(d[0]);
  auto flen = static_cast<uint32_t>(frame.size());
  const uint32_t hdr = hdr_len();
  tx_hdr_write(s0, tx_header_);
  if (layout == TxLayout::Single) {
    std::memcpy(s0 + hdr, frame.data(), frame.size());
    Seg seg{t.slot_gpa(d[0]), hdr + flen, false};
    return t.post_chain(std::span(&seg, 1)).has_value();
  }
  if (layout == TxLayout::Chained) {
    std::memcpy(t.slot(d[1]), frame.data(), frame.size());
    std::array segs{Seg{t.slot_gpa(d[0]), hdr, false}, Seg{t.slot_gpa(d[1]), flen, false}};
    return t.post_chain(segs).has_value();
  }
  std::memcpy(s0 + 64, frame.data(), frame.size());
  std::array segs{Seg{t.slot_gpa(d[0]), hdr, false}, Seg{t.slot_gpa(d[0]) + 64, flen, false}};
  return t.post_indirect(segs).has_value();
}

bool FakeFrontend::send_frame_at(std::span<const std::byte> frame, uint64_t gpa, uint16_t q) {
  DriverRing& t = tx(q);
  const uint32_t hdr = hdr_len();
  std::vector<std::byte> buf(hdr);
  tx_hdr_write(buf.data(), tx_header_);
  buf.insert(buf.end(), frame.begin(), frame.end());
  if (t.num_free() == 0) t.reclaim();
  if (!mem_.write(gpa, buf)) return false;
  Seg seg{gpa, static_cast<uint32_t>(buf.size()), false};
  return t.post_chain(std::span(&seg, 1)).has_value();
}

size_t FakeFrontend::reclaim_tx() {
  size_t n = 0;
  for (uint16_t q = 0; q < queue_pairs(); ++q) n += tx(q).reclaim().size();
  return n;
}

void FakeFrontend::fill_rx() {
  for (uint16_t q = 0; q < queue_pairs(); ++q) fill_rx(q);
}

void FakeFrontend::fill_rx(uint16_t q) {
  DriverRing& r = rx(q);
  const uint32_t seg_len = opt_.rx_buf_len / opt_.rx_chain;
  while (r.num_free() >= opt_.rx_chain) {
    std::vector<Seg> segs;
    for (uint16_t d : r.peek_free(opt_.rx_chain)) segs.push_back({r.slot_gpa(d), seg_len, true});
    std::optional<uint16_t> id = r.post_chain(segs);
    if (id) rx_segs_[q][*id] = std::move(segs);
  }
  notify(rx_ring(q));
}

std::span<const std::byte> FakeFrontend::rx_data(uint16_t q, uint32_t id, uint32_t len) {
  std::vector<Seg>& segs = rx_segs_[q][id];
  // A buffer a test posted itself (rx().post_chain): one slot, as before rx_chain.
  if (segs.empty()) segs.push_back({rx(q).slot_gpa(static_cast<uint16_t>(id)), opt_.rx_buf_len, true});
  for (uint32_t left = len; const Seg& s : segs) {
    if (left == 0) break;
    rx_written_.emplace_back(s.gpa, std::min(left, s.len));
    left -= std::min(left, s.len);
  }
  if (segs.size() == 1) return {rx(q).slot(static_cast<uint16_t>(id)), len};  // a one-buffer chain is slot `id`
  rx_gather_.clear();
  for (const Seg& s : segs) {
    const uint32_t n = std::min(len, s.len);
    if (n == 0) break;
    const std::byte* p = mem_.host(s.gpa, n);
    rx_gather_.insert(rx_gather_.end(), p, p + n);
    len -= n;
  }
  return rx_gather_;
}

void FakeFrontend::rx_complete(uint16_t q, const UsedEntry& e, std::vector<std::vector<std::byte>>& out) {
  DriverRing& r = rx(q);
  RxPending& p = rx_pending_[q];
  if (e.id >= r.size() || e.len > opt_.rx_buf_len) {
    ++rx_errors_;
    return;
  }
  const std::byte* data = rx_data(q, e.id, e.len).data();
  rx_segs_[q][e.id].clear();
  if (p.left == 0) {  // first buffer of a frame: starts with the header
    VirtioNetHdr h{};
    if (e.len < hdr_len()) {
      ++rx_errors_;
      return;
    }
    std::memcpy(&h, data, hdr_len());
    bool mrg = features_ & feat::kMrgRxbuf;
    if (mrg && h.num_buffers == 0) ++rx_errors_;
    p.left = mrg && h.num_buffers > 0 ? h.num_buffers : 1;
    p.data.assign(data + hdr_len(), data + e.len);
    p.header = h;
  } else {
    p.data.insert(p.data.end(), data, data + e.len);
  }
  if (--p.left == 0) {
    out.push_back(std::move(p.data));
    rx_headers_.push_back(p.header);
  }
}

std::vector<std::vector<std::byte>> FakeFrontend::poll_rx(uint16_t q) {
  std::vector<std::vector<std::byte>> out;
  std::vector<UsedEntry> used = rx(q).reclaim();
  for (const UsedEntry& e : used) rx_complete(q, e, out);
  if (!used.empty()) fill_rx(q);
  return out;
}

std::vector<std::vector<std::byte>> FakeFrontend::poll_rx() {
  std::vector<std::vector<std::byte>> out;
  for (uint16_t q = 0; q < queue_pairs(); ++q)
    for (auto& f : poll_rx(q)) out.push_back(std::move(f));
  return out;
}

bool FakeFrontend::wait_call(uint32_t ring, Millis timeout) {
  pollfd p{call_.at(ring).get(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  uint64_t v;
  [[maybe_unused]] ssize_t n = ::read(call_[ring].get(), &v, sizeof(v));
  return true;
}

bool FakeFrontend::wait_rx_call(Millis timeout) {
  std::vector<pollfd> fds;
  for (uint16_t q = 0; q < queue_pairs(); ++q) fds.push_back({call_[rx_ring(q)].get(), POLLIN, 0});
  if (::poll(fds.data(), fds.size(), static_cast<int>(timeout.count())) <= 0) return false;
  for (const pollfd& p : fds) {
    uint64_t v;
    if (p.revents & POLLIN) [[maybe_unused]] ssize_t n = ::read(p.fd, &v, sizeof(v));
  }
  return true;
}

std::vector<std::vector<std::byte>> FakeFrontend::wait_rx(size_t n, Millis timeout) {
  std::vector<std::vector<std::byte>> got;
  auto deadline = Clock::now() + timeout;
  while (got.size() < n && Clock::now() < deadline) {
    for (auto& f : poll_rx()) got.push_back(std::move(f));
    if (got.size() < n) wait_rx_call(Millis(1));
  }
  return got;
}

}  // namespace vusw::it
