// vhost-user message handlers.
#include "control/vhost_user/session.h"

#include <rte_ether.h>
#include <rte_mbuf.h>

#include <array>
#include <bit>
#include <chrono>
#include <thread>
#include <cstring>

#include "control/vhost_user/dispatch.h"
#include "control/vhost_user/userfault.h"
#include "vusw/l2switch.h"
#include "vusw/log.h"
#include "vusw/pmd.h"
#include "vusw/rcu.h"

namespace vusw::vhost_user {
namespace {

RegionDesc region_desc(const MemRegion& r)
{
    return RegionDesc{r.guest_phys_addr, r.memory_size, r.userspace_addr, r.mmap_offset};
}

struct RingCall {
    VhostPort* port;
    uint16_t index;
    RingSetup setup;
    static uint64_t run(void* arg, PmdContext&)
    {
        auto* self = static_cast<RingCall*>(arg);
        return self->port->apply_ring(self->index, self->setup);
    }
};

struct InjectCall {
    L2Switch* l2;
    Port* from;
    rte_mbuf* frame;
    static uint64_t run(void* arg, PmdContext& ctx)
    {
        auto* self = static_cast<InjectCall*>(arg);
        self->l2->forward(ctx, *self->from, &self->frame, 1);
        return 0;
    }
};

// RARP announcing `mac` (what a migrated guest without GUEST_ANNOUNCE needs; RFC 903).
rte_mbuf* make_rarp(rte_mempool* pool, const uint8_t* mac)
{
    std::array<uint8_t, 60> frame{};
    std::fill_n(frame.begin(), 6, 0xff);            // broadcast
    std::copy_n(mac, 6, frame.begin() + 6);
    frame[12] = 0x80, frame[13] = 0x35;             // ethertype RARP
    const uint8_t arp[] = {0, 1, 8, 0, 6, 4, 0, 3};  // ethernet, IPv4, hlen 6, plen 4, op 3 (request reverse)
    std::copy_n(arp, sizeof(arp), frame.begin() + 14);
    std::copy_n(mac, 6, frame.begin() + 22);        // sender hardware address
    std::copy_n(mac, 6, frame.begin() + 32);        // target hardware address
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    char* data = m != nullptr ? rte_pktmbuf_append(m, frame.size()) : nullptr;
    if (data == nullptr) {
        rte_pktmbuf_free(m);
        return nullptr;
    }
    std::memcpy(data, frame.data(), frame.size());
    return m;
}

const MemTable& current_table(VhostPort& port)
{
    static const MemTable empty;
    const auto& owned = port.memory().owned();
    return owned ? *owned : empty;
}

// The offload features offered here that need another one (virtio 1.2 §5.1.3.1), and
// what they need (any of): the bits of `wanted` accepted without what they require.
struct Requires {
    uint64_t feature;
    uint64_t any_of;
};
constexpr std::array kRequires = {
    Requires{feature::kHostEcn, feature::kHostTso4 | feature::kHostTso6},
    Requires{feature::kGuestEcn, feature::kGuestTso4 | feature::kGuestTso6},
    Requires{feature::kHostUso, feature::kCsum},
    Requires{feature::kGuestUso4, feature::kGuestCsum},
    Requires{feature::kGuestUso6, feature::kGuestCsum},
};

// One direction's offloads (GUEST_* for guest RX, CSUM/HOST_* for guest TX): segmentation
// only with the partial checksum every segment's header asks for (§5.1.6.2), ECN only
// with TCP segmentation.
OffloadCaps offloads_of(bool csum, bool tso4, bool tso6, bool ecn, bool uso4, bool uso6)
{
    OffloadCaps c;
    c.csum = csum;
    c.tso4 = csum && tso4;
    c.tso6 = csum && tso6;
    c.ecn = ecn && (c.tso4 || c.tso6);
    c.uso4 = csum && uso4;
    c.uso6 = csum && uso6;
    return c;
}

uint64_t missing_dependencies(uint64_t wanted)
{
    uint64_t orphans = 0;
    for (const Requires& r : kRequires)
        if ((wanted & r.feature) && !(wanted & r.any_of))
            orphans |= r.feature;
    return orphans;
}

}  // namespace

Session::Session(VhostPort& port, UniqueFd sock, SessionEnv env) : port_(port), conn_(std::move(sock)), env_(env)
{
    port_.set_state("connected");
    MutexLock lock(port_.protocol().mutex);
    ++port_.protocol().connections;
}

Session::~Session()
{
    for (uint32_t i = 0; i < rings_.size(); ++i) {
        uint32_t base = 0;
        (void)stop_ring(i, base);
    }
    port_.memory().publish(nullptr, env_.reclaimer, &port_.grace());  // unmapped after the grace period
    port_.dirty_log().publish(nullptr, env_.reclaimer);
    {
        MutexLock lock(port_.protocol().mutex);
        port_.protocol().mem_regions = 0;
        port_.protocol().mem_regions_dma = 0;
        port_.protocol().log_size = 0;
        port_.protocol().logging = false;
    }
    port_.set_state(port_.client_mode() ? "connecting" : "waiting");
    if (mtu_set_) {
        port_.set_frontend_mtu(std::nullopt);  // the operator's mtu= or the default again
        log(LogLevel::info, "port {}: MTU {} again ({}): its front-end is gone", port_.name(), port_.mtu(),
            mtu_source_name(port_.effective_mtu().source));
    }
}

void Session::record_error(const Error& e)
{
    port_.protocol().count_error(e.reason, e.detail);
    // A front-end can repeat an error as fast as it can send: the first of each kind per
    // window is logged, the rest summed up (log.h).
    log_limited(LogLevel::warn, fmt::format("port {}: {}", port_.name(), e.reason), "port {}: {} ({})", port_.name(),
                e.detail, e.reason);
}

bool Session::on_readable()
{
    auto whole = conn_.receive(msg_);
    if (!whole) {
        if (std::string_view(whole.error().reason) == "peer_closed")
            log(LogLevel::info, "port {}: front-end disconnected", port_.name());
        else
            record_error(whole.error());
        return false;
    }
    if (!*whole)
        return true;  // part of a message: the rest wakes us again
    const uint32_t code = msg_.header.request;
    if (is_postcopy_ack(msg_)) {
        log(LogLevel::debug, "port {}: postcopy memory update acknowledged", port_.name());
        return true;
    }
    port_.protocol().count_message(code);
    log(LogLevel::debug, "port {}: {} size {} fds {}", port_.name(), request_name(code), msg_.header.size, msg_.fds.size());
    const Row* row = find_row(code);
    Status result = row != nullptr ? check(*row, msg_, protocol_features_)
                                   : fail("unknown_request", fmt::format("unknown request code {}", code));
    if (result)
        result = (this->*row->handler)(msg_);
    if (!result)
        record_error(result.error());
    msg_.fds.clear();  // closes every fd no handler kept
    update_state();
    if (row != nullptr && row->reply == Reply::always)
        return result.has_value();  // the front-end waits for an answer we could not give: hang up
    if (msg_.need_reply() && has(protocol::kReplyAck))
        return conn_.reply_u64(Request(code), result ? 0 : 1).has_value();
    return true;
}

void Session::update_state()
{
    const bool ready = port_.memory().owned() && rings_[0].running() && rings_[1].running();
    port_.set_state(ready ? "ready" : "connected");
    ProtocolStats& p = port_.protocol();
    MutexLock lock(p.mutex);
    p.features = features_set_ ? features_ : 0;
    p.protocol_features = protocol_features_;
    p.mtu = mtu_set_ ? mtu_ : 0;
    p.log_size = log_ ? log_->size() : 0;
    p.logging = logging() && log_;
    for (std::size_t i = 0; i < rings_.size(); ++i)
        p.rings[i] = {rings_[i].have_num ? rings_[i].config.size : uint16_t(0), rings_[i].running(), rings_[i].enabled};
}

Result<uint32_t> Session::ring_index(uint64_t index) const
{
    if (index >= rings_.size())
        return fail("bad_vring_index", fmt::format("vring index {} out of range (we have {})", index, rings_.size()));
    return uint32_t(index);
}

Status Session::sync_ring(uint32_t index, bool reconfigure)
{
    Ring& r = rings_[index];
    RingCall call{&port_, uint16_t(index), {}};
    RingSetup& s = call.setup;
    s.ring = r.config;
    s.ring.event_idx = features_ & feature::kEventIdx;
    s.ring.packed = packed();
    s.call_fd = r.call.get();
    s.started = r.running();
    s.enabled = r.enabled;
    s.reconfigure = reconfigure;
    s.mrg_rxbuf = features_ & feature::kMrgRxbuf;
    s.in_order = features_ & feature::kInOrder;
    s.offloads = features_ & (feature::kCsum | feature::kGuestCsum);
    s.guest = offloads_of(features_ & feature::kGuestCsum, features_ & feature::kGuestTso4,
                          features_ & feature::kGuestTso6, features_ & feature::kGuestEcn,
                          features_ & feature::kGuestUso4, features_ & feature::kGuestUso6);
    s.host = offloads_of(features_ & feature::kCsum, features_ & feature::kHostTso4, features_ & feature::kHostTso6,
                         features_ & feature::kHostEcn, features_ & feature::kHostUso, features_ & feature::kHostUso);
    s.hdr_len = (features_ & (feature::kVersion1 | feature::kMrgRxbuf)) ? 12 : 10;
    s.log = logging();
    auto core = env_.place(uint16_t(index / 2));
    if (!core)
        return std::unexpected(core.error());
    auto done = (*core)->execute(PmdCommand{PmdCommand::Kind::call, nullptr, &RingCall::run, &call, 0});
    publish_rx_queues();
    return done ? Status{} : std::unexpected(done.error());
}

void Session::publish_rx_queues()
{
    std::array<uint16_t, kMaxQueuePairs> pairs;
    std::size_t n = 0;
    for (uint16_t q = 0; q < kMaxQueuePairs; ++q) {
        const Ring& rx = rings_[2 * q];
        if (rx.running() && rx.enabled)
            pairs[n++] = q;
    }
    port_.set_rx_queues(std::span(pairs.data(), n));
}

Status Session::stop_ring(uint32_t index, uint32_t& base)
{
    Ring& r = rings_[index];
    const bool was_running = r.running();
    r.kicked = false;
    r.kick.reset();
    publish_rx_queues();
    if (Pmd* core = env_.pmd(uint16_t(index / 2)); core != nullptr) {  // else never set up: no core holds it
        auto position = stop_on_core(*core, index);
        if (!position)
            return std::unexpected(position.error());
        if (was_running) {
            r.config.last_avail = uint16_t(*position);
            r.config.last_used = uint16_t(*position >> 16);
        }
    }
    base = r.config.last_avail;
    if (packed())
        base |= uint32_t(r.config.last_used) << 16;
    return {};
}

Result<uint32_t> Session::stop_on_core(Pmd& core, uint32_t index)
{
    RingCall call{&port_, uint16_t(index), {}};
    call.setup.call_fd = -1;
    call.setup.log = logging();  // what the stopped ring still publishes is logged
    auto done = core.execute(PmdCommand{PmdCommand::Kind::call, nullptr, &RingCall::run, &call, 0});
    if (!done)
        return std::unexpected(done.error());
    // Buffers lent to mbufs (zero copy) go back to the guest before we report the ring
    // stopped: nothing may touch it after GET_VRING_BASE's reply.
    if (port_.loans(uint16_t(index)) == 0)
        return uint32_t(*done);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (core.running() && port_.loans(uint16_t(index)) != 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    if (port_.loans(uint16_t(index)) != 0)
        log(LogLevel::warn, "port {}: vring {} stopped with {} buffers still lent; they will not be returned",
            port_.name(), index, port_.loans(uint16_t(index)));
    // The returned buffers' used entries are in the ring: stopping again publishes (and
    // logs) them before the reply.
    done = core.execute(PmdCommand{PmdCommand::Kind::call, nullptr, &RingCall::run, &call, 0});
    if (!done)
        return std::unexpected(done.error());
    return uint32_t(*done);
}

Status Session::publish(Result<std::unique_ptr<MemTable>> table)
{
    if (!table)
        return std::unexpected(table.error());
    const std::size_t regions = (*table)->region_count(), dma = (*table)->dma_region_count();
    port_.memory().publish(std::shared_ptr<const MemTable>(std::move(*table)), env_.reclaimer, &port_.grace());
    MutexLock lock(port_.protocol().mutex);
    port_.protocol().mem_regions = regions;
    port_.protocol().mem_regions_dma = dma;
    ++port_.protocol().mem_updates[std::string(request_name(msg_.header.request))];
    return {};
}

Status Session::get_features(Message&)
{
    return conn_.reply_u64(Request::GetFeatures, kOfferedFeatures);
}

void Session::publish_log()
{
    if (env_.always_log && !log_) {
        constexpr uint64_t kCovered = uint64_t(1) << 40;  // 1 TiB of guest memory: 32 MiB of log, touched as used
        if (auto own = DirtyLog::anonymous(kCovered >> (DirtyLog::kPageShift + 3)); own)
            log_ = std::move(*own);
    }
    std::shared_ptr<const DirtyLog> wanted;
    if (logging() && env_.write_dirty_log)
        wanted = log_;
    if (port_.dirty_log().owned() != wanted)
        port_.dirty_log().publish(std::move(wanted), env_.reclaimer);  // the old one is unmapped after the grace period
}

Status Session::set_log_base(Message& m)
{
    const auto base = m.as<LogBase>();
    auto mapped = DirtyLog::map(std::move(m.fds[0]), base.mmap_size, base.mmap_offset);
    if (!mapped)
        return std::unexpected(mapped.error());
    log_ = std::move(*mapped);
    publish_log();
    log(LogLevel::info, "port {}: dirty log of {} KiB (guest memory up to {} MiB)", port_.name(), log_->size() >> 10,
        log_->covers() >> 20);
    // With LOG_SHMFD the front-end waits for a reply (QEMU 7.2 accepts any payload).
    return conn_.reply_u64(Request::SetLogBase, 0);
}

Status Session::set_log_fd(Message& m)
{
    log_fd_ = std::move(m.fds[0]);
    return {};
}

Status Session::set_features(Message& m)
{
    const uint64_t wanted = m.as<uint64_t>();
    if (wanted & ~kOfferedFeatures)
        return fail("unsupported_features", fmt::format("features {:#x} include bits we did not offer ({:#x})", wanted,
                                                        wanted & ~kOfferedFeatures));
    if (const uint64_t orphans = missing_dependencies(wanted))
        return fail("feature_dependency", fmt::format("features {:#x} lack the features they require (virtio 1.2 "
                                                      "§5.1.3.1: ECN needs TSO4/6, USO needs CSUM)", orphans));
    const bool was_logging = logging();
    features_ = wanted;
    features_set_ = true;
    if (logging() != was_logging)
        log(LogLevel::info, "port {}: dirty logging {} (LOG_ALL)", port_.name(), logging() ? "on" : "off");
    publish_log();  // before the rings' logging loops run, after they stopped
    for (uint32_t i = 0; i < rings_.size(); ++i)
        if (rings_[i].kicked)
            if (auto ok = sync_ring(i); !ok)
                return ok;
    return {};
}

Status Session::set_owner(Message&)
{
    return {};
}

Status Session::reset_owner(Message&)
{
    // Deprecated; the spec allows treating it as "disable all rings" but keeping the session.
    for (uint32_t i = 0; i < rings_.size(); ++i) {
        uint32_t base = 0;
        if (auto ok = stop_ring(i, base); !ok)
            return ok;
    }
    return {};
}

Status Session::set_mem_table(Message& m)
{
    const auto table = m.as<MemoryTable>();
    if (table.nregions > kMaxMemTableRegions || m.header.size != 8 + table.nregions * sizeof(MemRegion))
        return fail("bad_payload_size", fmt::format("SET_MEM_TABLE: {} regions in {} bytes", table.nregions, m.header.size));
    if (m.fds.size() != table.nregions)
        return fail("bad_fd_count", fmt::format("SET_MEM_TABLE: {} regions but {} fds", table.nregions, m.fds.size()));
    std::vector<std::shared_ptr<const MappedRegion>> regions;
    for (uint32_t i = 0; i < table.nregions; ++i) {
        auto region = map_region(std::move(m.fds[i]), region_desc(table.regions[i]));
        if (!region)
            return std::unexpected(region.error());
        regions.push_back(std::move(*region));
    }
    repeated_regions_.clear();  // a whole new table: every region is added once
    if (auto ok = publish(MemTable::from_regions(regions)); !ok || !postcopy_listening_)
        return ok;
    // Postcopy: the table comes back with our mapping addresses, which QEMU's fault
    // handler needs (spec "SET_MEM_TABLE": the reply in postcopy mode).
    MemoryTable reply = table;
    for (uint32_t i = 0; i < table.nregions; ++i)
        reply.regions[i].userspace_addr = uint64_t(uintptr_t(regions[i]->host()));
    return conn_.reply(Request::SetMemTable, std::as_bytes(std::span(&reply, 1)).first(m.header.size));
}

Result<std::shared_ptr<const MappedRegion>> Session::map_region(UniqueFd fd, const RegionDesc& desc)
{
    if (!postcopy_listening_)
        return MappedRegion::map(std::move(fd), desc);
    auto region = MappedRegion::map(std::move(fd), desc, false);  // no DMA pinning before the pages arrived
    if (!region)
        return region;
    if (auto ok = register_missing(userfault_.get(), (*region)->mapping()); !ok)
        return std::unexpected(ok.error());
    return region;
}

bool Session::is_postcopy_ack(const Message& m) const
{
    const auto code = Request(m.header.request);
    return postcopy_listening_ && m.header.size == sizeof(uint64_t) && m.fds.empty() &&
           (code == Request::None || code == Request::SetMemTable || code == Request::AddMemReg ||
            code == Request::RemMemReg);
}

Status Session::add_mem_reg(Message& m)
{
    const RegionDesc desc = region_desc(m.as<SingleRegion>().region);
    const MemTable& now = current_table(port_);
    // QEMU (7.2 at least) runs each queue pair as a vhost device of its own on the one
    // connection, and each adds, and later removes, the same regions: a region that is
    // mapped already, identical in gpa, uva and size, is counted, not mapped again.
    std::shared_ptr<const MappedRegion> region;
    if (const auto* known = now.find(desc)) {
        ++repeated_regions_[{desc.gpa, desc.uva, desc.size}];
        region = *known;
    } else {
        if (now.region_count() >= kMaxMemSlots)  // before mapping anything
            return fail("mem_slots_full", fmt::format("ADD_MEM_REG: all {} memory slots in use", kMaxMemSlots));
        auto mapped = map_region(std::move(m.fds[0]), desc);
        if (!mapped)
            return std::unexpected(mapped.error());
        region = std::move(*mapped);
        if (auto ok = publish(now.with_region(region)); !ok)
            return ok;
    }
    if (!postcopy_listening_)
        return {};
    // Postcopy: the region comes back with our mapping address (spec "ADD_MEM_REG"),
    // for every ADD, also one of a region we had already.
    SingleRegion reply = m.as<SingleRegion>();
    reply.region.userspace_addr = uint64_t(uintptr_t(region->host()));
    return conn_.reply(Request::AddMemReg, std::as_bytes(std::span(&reply, 1)));
}

Status Session::rem_mem_reg(Message& m)
{
    {
        MutexLock lock(port_.protocol().mutex);
        port_.protocol().rem_mem_reg_fds += m.fds.size();
    }
    const RegionDesc desc = region_desc(m.as<SingleRegion>().region);
    // A region added more than once (see add_mem_reg) goes with its last removal.
    if (auto repeat = repeated_regions_.find({desc.gpa, desc.uva, desc.size}); repeat != repeated_regions_.end()) {
        if (--repeat->second == 0)
            repeated_regions_.erase(repeat);
        return {};
    }
    return publish(current_table(port_).without_region(desc));
}

Status Session::get_max_mem_slots(Message&)
{
    return conn_.reply_u64(Request::GetMaxMemSlots, kMaxMemSlots);
}

Status Session::set_vring_num(Message& m)
{
    const auto state = m.as<VringState>();
    auto index = ring_index(state.index);
    if (!index)
        return std::unexpected(index.error());
    // Size 0: a ring the front-end does not use (DPDK virtio-user sends it for the rings
    // of queue pairs it did not configure). Packed rings may have any size (§2.8).
    if (state.num > virtio::kMaxQueueSize || (!packed() && !std::has_single_bit(state.num) && state.num != 0))
        return fail("bad_ring_size", fmt::format("vring {}: size {} is not {} in 1..32768", state.index, state.num,
                                                 packed() ? "a size" : "a power of two"));
    rings_[*index].config.size = uint16_t(state.num);
    rings_[*index].have_num = state.num != 0;
    return rings_[*index].kicked ? sync_ring(*index, true) : Status{};
}

Status Session::set_vring_addr(Message& m)
{
    const auto addr = m.as<VringAddr>();
    auto index = ring_index(addr.index);
    if (!index)
        return std::unexpected(index.error());
    Ring& r = rings_[*index];
    r.config.desc = FrontendAddr{addr.desc};
    r.config.avail = FrontendAddr{addr.avail};
    r.config.used = FrontendAddr{addr.used};
    r.config.log_used = addr.flags & kVringFlagLog;
    r.config.log_addr = addr.log;
    r.have_addr = true;
    return r.kicked ? sync_ring(*index, true) : Status{};
}

Status Session::set_vring_base(Message& m)
{
    const auto state = m.as<VringState>();
    auto index = ring_index(state.index);
    if (!index)
        return std::unexpected(index.error());
    // Split: the next avail index. Packed: avail index | wrap << 15, and (front-ends that
    // know it) used index | wrap << 15 in bits 16-31; without it, used = avail.
    if (!packed() && state.num > 0xffff)
        return fail("bad_vring_base", fmt::format("vring {}: base {} does not fit a split ring index", state.index, state.num));
    RingConfig& c = rings_[*index].config;
    c.last_avail = uint16_t(state.num);
    c.last_used = state.num >> 16 != 0 ? uint16_t(state.num >> 16) : c.last_avail;
    return {};
}

Status Session::get_vring_base(Message& m)
{
    const auto state = m.as<VringState>();
    auto index = ring_index(state.index);
    if (!index)
        return std::unexpected(index.error());
    uint32_t base = 0;
    if (auto ok = stop_ring(*index, base); !ok)  // spec: GET_VRING_BASE stops the ring
        return ok;
    const VringState reply{state.index, base};
    return conn_.reply(Request::GetVringBase, std::as_bytes(std::span(&reply, 1)));
}

Status Session::set_ring_fd(Message& m, UniqueFd Ring::*slot)
{
    const uint64_t value = m.as<uint64_t>();
    auto index = ring_index(value & kVringIndexMask);
    if (!index)
        return std::unexpected(index.error());
    const bool no_fd = value & kVringNoFdFlag;
    if (no_fd != m.fds.empty())
        return fail("bad_fd_count", fmt::format("{} for vring {}: no-fd flag {} but {} fds", request_name(m.header.request),
                                                *index, no_fd, m.fds.size()));
    UniqueFd previous = std::move(rings_[*index].*slot);  // closed after the PMD stopped using it
    rings_[*index].*slot = no_fd ? UniqueFd() : std::move(m.fds[0]);
    if (slot == &Ring::kick) {
        rings_[*index].kicked = true;  // spec "Ring states": a kick starts the ring
        // Without PROTOCOL_FEATURES rings start enabled.
        if (!(features_ & feature::kProtocolFeatures))
            rings_[*index].enabled = true;
    }
    return slot == &Ring::err || !rings_[*index].kicked ? Status{} : sync_ring(*index);
}

Status Session::set_vring_kick(Message& m)
{
    return set_ring_fd(m, &Ring::kick);
}

Status Session::set_vring_call(Message& m)
{
    return set_ring_fd(m, &Ring::call);
}

Status Session::set_vring_err(Message& m)
{
    return set_ring_fd(m, &Ring::err);
}

Status Session::get_protocol_features(Message&)
{
    return conn_.reply_u64(Request::GetProtocolFeatures, offered_protocol_features());
}

Status Session::set_protocol_features(Message& m)
{
    const uint64_t wanted = m.as<uint64_t>();
    if (wanted & ~offered_protocol_features())
        return fail("unsupported_features", fmt::format("protocol features {:#x} include bits we did not offer", wanted));
    protocol_features_ = wanted;
    return {};
}

Status Session::get_queue_num(Message&)
{
    return conn_.reply_u64(Request::GetQueueNum, kMaxQueuePairs);
}

Status Session::set_vring_enable(Message& m)
{
    // QEMU sends this before any ring setup (qemu-7.2-notes.md): accept it on any valid index.
    const auto state = m.as<VringState>();
    auto index = ring_index(state.index);
    if (!index)
        return std::unexpected(index.error());
    rings_[*index].enabled = state.num != 0;
    return rings_[*index].kicked ? sync_ring(*index) : Status{};
}

Status Session::send_rarp(Message& m)
{
    uint8_t mac[8];
    std::memcpy(mac, m.payload.data(), sizeof(mac));
    InjectCall call{&env_.l2, &port_, make_rarp(env_.pool, mac)};
    if (call.frame == nullptr)
        return fail("no_mbuf", "SEND_RARP: no mbuf for the RARP frame");
    auto core = env_.place(0);
    if (!core) {
        rte_pktmbuf_free(call.frame);
        return std::unexpected(core.error());
    }
    auto done = (*core)->execute(PmdCommand{PmdCommand::Kind::call, nullptr, &InjectCall::run, &call, 0});
    return done ? Status{} : std::unexpected(done.error());
}

Status Session::net_set_mtu(Message& m)
{
    // Refused above the operator's mtu=; else the port's MTU while this session lives
    // (mtu.h): the device must not pass the driver larger frames (virtio 1.2 §5.1.6.3.2).
    const uint64_t mtu = m.as<uint64_t>();
    if (auto ok = check_frontend_mtu(port_.config(), mtu); !ok)
        return ok;
    mtu_ = uint16_t(mtu);
    mtu_set_ = true;
    port_.set_frontend_mtu(mtu_);
    log(LogLevel::info, "port {}: MTU {} (the front-end's NET_SET_MTU)", port_.name(), mtu_);
    return {};
}

Status Session::set_status(Message& m)
{
    status_ = uint8_t(m.as<uint64_t>());
    if (status_ == 0)  // virtio: writing 0 resets the device
        return reset_owner(m);
    return {};
}

Status Session::get_status(Message&)
{
    return conn_.reply_u64(Request::GetStatus, status_);
}

uint64_t Session::offered_protocol_features()
{
    return kOfferedProtocolFeatures | (userfault_available() ? protocol::kPagefault : 0);
}

Status Session::postcopy_advise(Message&)
{
    // QEMU 7.2 runs one vhost device per queue pair and each advises: they all get the
    // same userfaultfd (a mapping registers with one), as duplicates.
    if (!userfault_) {
        auto fd = open_userfault();
        if (!fd)
            return std::unexpected(fd.error());
        userfault_ = std::move(*fd);
        log(LogLevel::info, "port {}: postcopy advised: page faults of its guest memory go to the front-end",
            port_.name());
    }
    return conn_.reply(Request::PostcopyAdvise, {}, userfault_.get());
}

Status Session::postcopy_listen(Message&)
{
    // A failure is answered (non-zero): QEMU then fails the migration, not the guest's port.
    Status ok = userfault_ ? Status{} : fail("postcopy_order", "POSTCOPY_LISTEN before POSTCOPY_ADVISE");
    if (ok && !postcopy_listening_) {
        // Memory mapped before: its pages may not have arrived either.
        for (const auto& r : current_table(port_).regions())
            if (ok = register_missing(userfault_.get(), r->mapping()); !ok)
                break;
        postcopy_listening_ = ok.has_value();
    }
    if (!ok)
        record_error(ok.error());
    return conn_.reply_u64(Request::PostcopyListen, ok ? 0 : 1);
}

Status Session::postcopy_end(Message&)
{
    if (userfault_) {
        for (const auto& r : current_table(port_).regions())
            unregister(userfault_.get(), r->mapping());
        userfault_.reset();
        log(LogLevel::info, "port {}: postcopy ended: all guest memory is here", port_.name());
    }
    postcopy_listening_ = false;
    return conn_.reply_u64(Request::PostcopyEnd, 0);
}

}  // namespace vusw::vhost_user
