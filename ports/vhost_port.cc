// vhost-user-net port: guest TX rings into mbufs, mbufs into guest RX rings.
#include "ports/vhost_port.h"

#include <rte_eal.h>
#include <rte_mbuf.h>
#include <rte_memcpy.h>
#include <rte_prefetch.h>
#include <rte_ring.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <span>
#include <stdexcept>

#include "vusw/prefetch.h"

namespace vusw {
namespace {

constexpr uint32_t kMaxFrame = 65535 + 18;  // largest frame a guest may hand us (TSO off: MTU up to 64K)
constexpr uint32_t kEthHeader = 14;

// virtio-net header (virtio 1.2 §5.1.6), 12 bytes with VERSION_1 or MRG_RXBUF.
struct NetHeader {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;
};
static_assert(sizeof(NetHeader) == 12);

// Takes the burst's pre-allocated mbuf if there is one, else allocates.
rte_mbuf* take_mbuf(rte_mbuf*& spare, rte_mempool* pool)
{
    rte_mbuf* m = spare != nullptr ? spare : rte_pktmbuf_alloc(pool);
    spare = nullptr;
    return m;
}

// The frame after the virtio-net header when it lies in one piece of guest memory (the
// common layouts: header and frame in one descriptor, or the frame alone in a second
// one); empty otherwise.
std::span<std::byte> frame_in_one_piece(const Chain& c, uint32_t hdr_len)
{
    if (c.count == 1)
        return {c.seg[0].host + hdr_len, c.seg[0].len - hdr_len};
    if (c.count == 2 && c.seg[0].len == hdr_len)
        return {c.seg[1].host, c.seg[1].len};
    return {};
}

// Copies a chain (minus its leading virtio-net header) into an mbuf chain.
rte_mbuf* copy_out(const Chain& c, uint32_t skip, rte_mbuf*& spare, rte_mempool* pool, Drop& why)
{
    rte_mbuf* head = take_mbuf(spare, pool);
    if (head == nullptr) {
        why = Drop::no_mbuf;
        return nullptr;
    }
    const std::span<std::byte> frame = frame_in_one_piece(c, skip);
    if (!frame.empty() && frame.size() <= rte_pktmbuf_tailroom(head)) {
        const uint16_t len = uint16_t(frame.size());
        rte_memcpy(rte_pktmbuf_mtod(head, void*), frame.data(), len);
        head->data_len = len;
        head->pkt_len = len;
        return head;
    }
    rte_mbuf* tail = head;
    for (uint16_t i = 0; i < c.count; ++i) {
        const std::byte* src = c.seg[i].host;
        uint32_t left = c.seg[i].len;
        const uint32_t skipped = std::min(left, skip);
        src += skipped;
        left -= skipped;
        skip -= skipped;
        while (left > 0) {
            uint16_t room = rte_pktmbuf_tailroom(tail);
            if (room == 0) {
                rte_mbuf* next = rte_pktmbuf_alloc(pool);
                if (next == nullptr || rte_pktmbuf_chain(head, next) != 0) {
                    rte_pktmbuf_free(next);
                    rte_pktmbuf_free(head);
                    why = Drop::no_mbuf;
                    return nullptr;
                }
                tail = next;
                room = rte_pktmbuf_tailroom(tail);
            }
            const uint16_t n = uint16_t(std::min<uint32_t>(room, left));
            std::memcpy(rte_pktmbuf_mtod_offset(tail, char*, tail->data_len), src, n);
            tail->data_len = uint16_t(tail->data_len + n);
            head->pkt_len += n;
            src += n;
            left -= n;
        }
    }
    return head;
}

// Stores a virtio-net header with no offloads and `num_buffers` (only in the 12-byte
// layout) with plain stores. Never build it on the stack and copy it: that load waits
// for every older store, including the previous frames' stores into cold guest buffers
// (a failed store forward), and cost more than half the 64 B loopback rate.
void store_header(std::byte* dst, uint16_t num_buffers, uint32_t hdr_len)
{
    const uint64_t first = 0;  // flags, gso_type, hdr_len, gso_size, csum_start
    const uint16_t zero = 0;   // csum_offset
    std::memcpy(dst, &first, sizeof(first));
    std::memcpy(dst + 8, &zero, sizeof(zero));
    if (hdr_len == sizeof(NetHeader))
        std::memcpy(dst + 10, &num_buffers, sizeof(num_buffers));
}

// Writes bytes across the segments of a run of RX chains, recording per-chain usage.
class ChainWriter {
public:
    ChainWriter(Chain* chains, uint32_t* used) : chains_(chains), used_(used) {}

    void write(const void* data, uint32_t len)
    {
        const auto* src = static_cast<const std::byte*>(data);
        while (len > 0) {
            const Segment& s = chains_[chain_].seg[seg_];
            const uint32_t n = std::min(len, s.len - off_);
            std::memcpy(s.host + off_, src, n);
            used_[chain_] += n;
            src += n;
            len -= n;
            off_ += n;
            if (off_ == s.len)
                advance();
        }
    }

    void write_header(uint16_t num_buffers, uint32_t hdr_len)
    {
        const Segment& s = chains_[chain_].seg[seg_];
        if (off_ != 0 || s.len < hdr_len) {  // a header split over descriptors: rare
            NetHeader hdr{};
            hdr.num_buffers = num_buffers;
            write(&hdr, hdr_len);
            return;
        }
        store_header(s.host, num_buffers, hdr_len);
        used_[chain_] += hdr_len;
        off_ = hdr_len;
        if (off_ == s.len)
            advance();
    }

private:
    void advance()
    {
        off_ = 0;
        if (++seg_ == chains_[chain_].count) {
            seg_ = 0;
            ++chain_;
        }
    }

    Chain* chains_;
    uint32_t* used_;
    uint16_t chain_ = 0;
    uint16_t seg_ = 0;
    uint32_t off_ = 0;
};

}  // namespace

void ProtocolStats::count_message(uint32_t request)
{
    std::lock_guard lock(mutex);
    if (request < messages.size())
        ++messages[request];
}

void ProtocolStats::count_error(const std::string& reason)
{
    std::lock_guard lock(mutex);
    ++errors[reason];
}

VhostPort::VhostPort(std::string name, std::string path, bool client)
    : Port(std::move(name), "vhost-user"), path_(std::move(path)), client_(client)
{
    create_handoff();
    static unsigned serial = 0;
    const std::string ring_name = "vusw_ret" + std::to_string(serial++);
    returns_ = rte_ring_create(ring_name.c_str(), kMaxLoans, SOCKET_ID_ANY, RING_F_SC_DEQ | RING_F_EXACT_SZ);
    if (returns_ == nullptr)
        throw std::runtime_error("cannot create the buffer return ring for port " + this->name());
}

VhostPort::~VhostPort()
{
    rte_ring_free(returns_);
}

std::string VhostPort::state() const
{
    return state_;
}

uint64_t VhostPort::broken_total() const
{
    uint64_t n = 0;
    for (const Counter& c : broken_)
        n += c.get();
    return n;
}

uint16_t VhostPort::apply_ring(uint16_t index, const RingSetup& s)
{
    Vring& v = vrings_[index];
    if (s.started && (!v.started || s.reconfigure)) {
        RingConfig ring = s.ring;
        if (v.started)
            ring.last_avail = v.queue.last_avail();  // new placement, same position
        v.queue.configure(ring);
        v.seen.store(QueueFault::none, std::memory_order_relaxed);
        ++v.generation;  // loans of the previous run are not returned into this one
        // Loan slots are addressed by in-flight mbufs: never move them while any is lent.
        if (index % 2 == 1 && v.lent.size() < ring.size && v.loans.load(std::memory_order_relaxed) == 0) {
            v.lent = std::vector<Loan>(ring.size);
            v.order.assign(ring.size, 0);
            v.order_mask = ring.size - 1u;  // ring sizes are powers of two
            v.finished.assign(ring.size, 0);
        }
        std::fill(v.finished.begin(), v.finished.end(), 0);
        v.order_first = v.order_end = 0;
    }
    v.call_fd = s.call_fd;
    v.started = s.started;
    v.enabled = s.enabled;
    v.loops = loops_for(s);
    return v.queue.last_avail();
}

void VhostPort::note_fault(Vring& v)
{
    const QueueFault f = v.queue.fault();
    if (f != QueueFault::none && v.seen.load(std::memory_order_relaxed) != f) {
        broken_[std::size_t(f)].add();
        v.seen.store(f, std::memory_order_relaxed);
    }
}

bool VhostPort::usable(Vring& v, const MemTable* mem)
{
    if (!v.started)
        return false;
    if (v.queue.memory() != mem)
        v.queue.attach(mem);  // new snapshot: translate the rings again
    note_fault(v);
    return v.queue.ready();
}

uint16_t VhostPort::fresh_available(Vring& v)
{
    // Order matters: the avail index first (acquire), the memory table after it. A guest
    // posts buffers in a new region only after our ADD_MEM_REG ack, and the table with that
    // region was published before the ack: reading the table after the index guarantees
    // we translate those buffers with it, never with the batch's older snapshot.
    const uint16_t n = v.queue.available();
    const MemTable* mem = memory_.read();
    if (n > 0 && v.queue.memory() != mem && !v.queue.attach(mem)) {
        note_fault(v);
        return 0;
    }
    return v.queue.ready() ? n : 0;
}

void VhostPort::notify(Vring& v)
{
    if (v.queue.flush_used() && v.call_fd >= 0) {
        const uint64_t one = 1;
        [[maybe_unused]] ssize_t r = ::write(v.call_fd, &one, sizeof(one));  // the one syscall on the packet path
    }
}

uint16_t VhostPort::receive(PmdContext& ctx, rte_mbuf** pkts, uint16_t max)
{
    take_returns();
    const MemTable* mem = memory_.read();
    uint16_t got = 0;
    for (uint16_t q = 1; q < vrings_.size() && got < max; q += 2) {
        Vring& v = vrings_[q];
        if (usable(v, mem))
            got = uint16_t(got + (this->*v.loops.receive)(ctx, v, q, pkts + got, uint16_t(max - got)));
    }
    return got;
}

template <class F>
rte_mbuf* VhostPort::lend(PmdContext& ctx, Vring& v, uint16_t index, const MemTable* mem, const Chain& c,
                          rte_mbuf*& spare, Drop& why)
{
    // Lend only a frame that sits in one piece of guest memory after its header.
    const std::span<std::byte> piece = frame_in_one_piece(c, F::kHdr);
    std::byte* data = piece.data();
    const std::size_t frame = piece.size();
    if (piece.empty() || frame < lend_min_ || frame > UINT16_MAX || !mem->lendable() || lent_total_ >= kMaxLoans ||
        v.lent.size() < v.queue.size() || v.lent[c.head].out)
        return nullptr;
    rte_mbuf* m = take_mbuf(spare, ctx.pool);
    if (m == nullptr) {
        why = Drop::no_mbuf;
        return nullptr;
    }
    Loan& loan = v.lent[c.head];
    loan = Loan{{}, this, mem, v.generation, index, c.head, true};
    loan.shinfo.free_cb = &VhostPort::on_mbuf_free;
    loan.shinfo.fcb_opaque = &loan;
    rte_mbuf_ext_refcnt_set(&loan.shinfo, 1);
    rte_pktmbuf_attach_extbuf(m, data, rte_iova_t(uintptr_t(data)), uint16_t(frame), &loan.shinfo);
    m->data_len = uint16_t(frame);
    m->pkt_len = uint32_t(frame);
    mem->loans().store(mem->loans().load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    v.loans.store(v.loans.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    ++lent_total_;
    return m;
}

void VhostPort::on_mbuf_free(void*, void* opaque)
{
    Loan* loan = static_cast<Loan*>(opaque);
    VhostPort* port = loan->port;
    if (current_pmd() == int(port->owner())) {
        port->give_back(*loan);
        return;
    }
    // Freed by another core (a NIC or hand-off owned elsewhere): the owner returns it.
    // The ring holds kMaxLoans entries, as many as can be lent, so this cannot fail.
    rte_ring_mp_enqueue(port->returns_, loan);
}

void VhostPort::give_back(Loan& loan)
{
    Vring& v = vrings_[loan.ring];
    loan.out = false;
    if (loan.generation == v.generation)
        complete(v, loan.head);  // published by the next flush()
    v.loans.store(v.loans.load(std::memory_order_relaxed) - 1, std::memory_order_release);
    --lent_total_;
    // Last: once zero, the control thread may free the snapshot.
    loan.table->loans().store(loan.table->loans().load(std::memory_order_relaxed) - 1, std::memory_order_release);
}

void VhostPort::complete(Vring& v, uint16_t head)
{
    if (v.order_first == v.order_end) {
        v.queue.push_used(head, 0);  // nothing older is still out
        return;
    }
    v.finished[head] = 1;
    while (v.order_first != v.order_end) {
        const uint16_t oldest = v.order[v.order_first & v.order_mask];
        if (!v.finished[oldest])
            break;
        v.finished[oldest] = 0;
        ++v.order_first;
        v.queue.push_used(oldest, 0);
    }
}

void VhostPort::take_returns()
{
    void* back[kBurst];
    unsigned n;
    while ((n = rte_ring_sc_dequeue_burst(returns_, back, kBurst, nullptr)) > 0)
        for (unsigned i = 0; i < n; ++i)
            give_back(*static_cast<Loan*>(back[i]));
}

void VhostPort::flush(PmdContext&)
{
    for (uint16_t q = 1; q < vrings_.size(); q += 2)
        notify(vrings_[q]);
}

template <class F>
bool VhostPort::take_frame(PmdContext& ctx, Vring& v, uint16_t index, const MemTable* mem, const Chain& c,
                           rte_mbuf*& spare, rte_mbuf*& out)
{
    Drop why = Drop::runt;
    rte_mbuf* m = nullptr;
    bool lent = false;
    if (!v.enabled)
        why = Drop::queue_disabled;
    else if (c.too_long)
        why = Drop::too_many_segments;
    else if (c.bytes > F::kHdr + kMaxFrame)
        why = Drop::oversize;
    else if (c.bytes >= F::kHdr + kEthHeader) {
        if (c.bytes >= F::kHdr + uint64_t(lend_min_))  // a cheap test before the call
            m = lend<F>(ctx, v, index, mem, c, spare, why);
        lent = m != nullptr;
        if (!lent)
            m = copy_out(c, F::kHdr, spare, ctx.pool, why);
    }
    // In order: a buffer taken while an older one is lent waits behind it (unless the
    // guest broke the rules and posted more buffers than its ring holds).
    if (F::kInOrder && (lent || v.order_first != v.order_end) && v.order_end - v.order_first < v.order.size())
        v.order[v.order_end++ & v.order_mask] = c.head;
    if (!lent)
        complete(v, c.head);  // copied (or dropped): the buffer is free again
    PortCounters& counters = this->counters(ctx.slot);
    if (m == nullptr) {
        counters.drop(why);
        return false;
    }
    counters.rx_packets.add();
    counters.rx_bytes.add(m->pkt_len);
    if (lent)
        counters.rx_zero_copy.add();
    out = m;
    return true;
}

template <class F>
uint16_t VhostPort::receive_ring(PmdContext& ctx, Vring& v, uint16_t index, rte_mbuf** pkts, uint16_t max)
{
    const uint16_t n = std::min({fresh_available(v), max, uint16_t(tx_chains_.size())});
    const MemTable* mem = v.queue.memory();
    v.queue.prefetch_heads(n);
    v.queue.prefetch_used(n);
    // Two passes: walk every chain of the burst and prefetch its frame, then copy or lend
    // them. The cache misses on the descriptors and payloads of the whole burst (lines
    // the guest's core just wrote) overlap instead of coming one frame at a time.
    uint16_t popped = 0;
    while (popped < n && v.queue.pop(tx_chains_[popped], false)) {
        const std::byte* frame = tx_chains_[popped].seg[0].host;
        rte_prefetch0(frame);
        rte_prefetch0(frame + RTE_CACHE_LINE_SIZE);
        ++popped;
    }
    // One mbuf per frame, allocated in bulk (each frame falls back to its own
    // allocation if the pool cannot give them all at once).
    std::array<rte_mbuf*, kBurst> spare{};
    if (popped > 0 && rte_pktmbuf_alloc_bulk(ctx.pool, spare.data(), popped) != 0)
        spare.fill(nullptr);
    uint16_t got = 0, unused = 0;
    for (uint16_t i = 0; i < popped; ++i) {
        if (take_frame<F>(ctx, v, index, mem, tx_chains_[i], spare[i], pkts[got]))
            ++got;
        if (spare[i] != nullptr)  // dropped before it needed one
            spare[unused++] = spare[i];
    }
    if (unused > 0)
        rte_pktmbuf_free_bulk(spare.data(), unused);
    note_fault(v);  // a chain that failed to pop broke the queue
    return got;
}

template <class F>
std::optional<Drop> VhostPort::claim(Vring& v, RxClaim& cl, uint16_t& avail)
{
    const uint64_t need = F::kHdr + cl.m->pkt_len;
    uint64_t have = 0;
    while (have < need) {
        if (avail == 0 || cl.count == kMaxRxChainsPerFrame) {
            v.queue.unpop(cl.count);  // not consumed: nothing was written to the used ring
            avail = uint16_t(avail + cl.count);
            cl.count = 0;
            return Drop::no_rx_buffer;
        }
        Chain& c = rx_chains_[cl.first + cl.count];
        if (!v.queue.pop(c, true)) {
            cl.count = 0;
            return Drop::queue_not_ready;
        }
        // Written in pass 2: the first line, and the line where the frame ends in this
        // buffer (a short frame after its header usually straddles two lines).
        prefetch_for_write(c.seg[0].host);
        prefetch_for_write(c.seg[0].host + (std::min<uint64_t>(need - have, c.seg[0].len) - 1));
        --avail;
        ++cl.count;
        have += c.bytes;
        if (!F::kMrgRxbuf)
            break;
    }
    if (have < need) {  // a single buffer, too small: returned empty, in order, by fill()
        cl.too_small = true;
        return Drop::rx_buffer_small;
    }
    return std::nullopt;
}

template <class F>
void VhostPort::fill(PmdContext& ctx, Vring& v, const RxClaim& cl)
{
    Chain* chains = &rx_chains_[cl.first];
    if (cl.too_small) {
        v.queue.push_used(chains[0].head, 0);
        return;
    }
    const rte_mbuf* m = cl.m;
    const uint32_t len = m->pkt_len;
    const Segment& first = chains[0].seg[0];
    if (m->nb_segs == 1 && first.len >= F::kHdr + len) {  // the common case: one buffer holds it all
        store_header(first.host, 1, F::kHdr);
        rte_memcpy(first.host + F::kHdr, rte_pktmbuf_mtod(m, const void*), len);
        v.queue.push_used(chains[0].head, F::kHdr + len);
    } else {
        std::array<uint32_t, kMaxRxChainsPerFrame> used{};
        ChainWriter out(chains, used.data());
        out.write_header(cl.count, F::kHdr);
        for (const rte_mbuf* s = m; s != nullptr; s = s->next)
            out.write(rte_pktmbuf_mtod(s, const void*), s->data_len);
        for (uint16_t i = 0; i < cl.count; ++i)
            v.queue.push_used(chains[i].head, used[i]);
    }
    PortCounters& counters = this->counters(ctx.slot);
    counters.tx_packets.add();
    counters.tx_bytes.add(len);
}

void VhostPort::transmit(PmdContext& ctx, rte_mbuf** pkts, uint16_t n)
{
    const MemTable* mem = memory_.read();
    for (uint16_t q = 0; q < vrings_.size(); q += 2) {
        Vring& v = vrings_[q];
        if (v.enabled && usable(v, mem)) {
            (this->*v.loops.transmit)(ctx, v, pkts, n);
            return;
        }
    }
    counters(ctx.slot).drop(Drop::queue_not_ready, n);
    rte_pktmbuf_free_bulk(pkts, n);
}

template <class F>
void VhostPort::transmit_ring(PmdContext& ctx, Vring& v, rte_mbuf** pkts, uint16_t n)
{
    uint16_t avail = fresh_available(v);
    v.queue.prefetch_heads(std::min(avail, n));
    v.queue.prefetch_used(std::min(avail, n));
    PortCounters& counters = this->counters(ctx.slot);
    // Two passes, as for guest TX: claim RX buffers for as many frames as the scratch
    // holds (the descriptor and buffer misses of all of them overlap), then copy.
    uint16_t next = 0;
    while (next < n) {
        uint16_t claimed = 0, chains = 0;
        for (; next < n; ++next) {
            if (!v.queue.ready()) {
                counters.drop(Drop::queue_not_ready);
                continue;
            }
            if (std::size_t(chains) + kMaxRxChainsPerFrame > rx_chains_.size())
                break;  // scratch full: copy these first
            RxClaim& cl = rx_claims_[claimed];
            cl = RxClaim{pkts[next], chains, 0, false};
            if (const std::optional<Drop> why = claim<F>(v, cl, avail)) {
                counters.drop(*why);
                if (!cl.too_small)
                    continue;
            }
            chains = uint16_t(chains + cl.count);
            ++claimed;
        }
        for (uint16_t k = 0; k < claimed; ++k) {
            if (k + 1 < claimed)
                rte_prefetch0(rte_pktmbuf_mtod(rx_claims_[k + 1].m, void*));
            fill<F>(ctx, v, rx_claims_[k]);
        }
    }
    rte_pktmbuf_free_bulk(pkts, n);
    note_fault(v);
    notify(v);
}

// Every combination of the features the loops depend on; the header is 12 bytes with
// VERSION_1 or MRG_RXBUF, else 10.
VhostPort::Loops VhostPort::loops_for(const RingSetup& s)
{
    const auto pick = [&]<uint16_t Hdr, bool Mrg>() -> Loops {
        if (s.in_order)
            return instantiate<RingFeatures<Hdr, Mrg, true>>();
        return instantiate<RingFeatures<Hdr, Mrg, false>>();
    };
    if (s.mrg_rxbuf)
        return pick.template operator()<12, true>();
    if (s.hdr_len == 12)
        return pick.template operator()<12, false>();
    return pick.template operator()<10, false>();
}

}  // namespace vusw
