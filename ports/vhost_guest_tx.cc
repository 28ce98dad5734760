// Guest TX: frames the guest sends, from its TX rings into mbufs. A frame is copied, or
// lent (zero copy: the mbuf points at the guest buffer until it is freed, vhost_loans.cc).
#include <rte_mbuf.h>
#include <rte_memcpy.h>
#include <rte_prefetch.h>

#include <algorithm>
#include <cstring>
#include <span>

#include "ports/vhost_rings.h"
#include "vusw/offload.h"

namespace vusw {
namespace {

constexpr uint32_t kMaxFrame = 65535 + 18;  // largest frame a guest may hand us (TSO off: MTU up to 64K)
constexpr uint32_t kEthHeader = 14;

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

// The virtio-net header at the start of a chain (`hdr_len` bytes of it; the rest zero).
virtio::NetHeader read_header(const Chain& c, uint32_t hdr_len)
{
    virtio::NetHeader h{};
    auto* dst = reinterpret_cast<std::byte*>(&h);
    for (uint16_t i = 0; i < c.count && hdr_len > 0; ++i) {
        const uint32_t n = std::min(hdr_len, c.seg[i].len);
        std::memcpy(dst, c.seg[i].host, n);
        dst += n;
        hdr_len -= n;
    }
    return h;
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

}  // namespace

template <class F>
rte_mbuf* VhostPort::lend(PmdContext& ctx, Vring& v, uint16_t index, const MemTable* mem, const Chain& c,
                          rte_mbuf*& spare, Drop& why)
{
    // Lend only a frame that sits in one piece of guest memory after its header.
    const std::span<std::byte> piece = frame_in_one_piece(c, F::kHdr);
    std::byte* data = piece.data();
    const std::size_t frame = piece.size();
    if (piece.empty() || frame < lend_min_ || frame > UINT16_MAX || !mem->lendable() || pairs_[pair_of(index)].lent >= kMaxLoans ||
        v.lent.size() < queue_of<typename F::Queue>(v).size() || v.lent[c.head].out)
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
    ++pairs_[pair_of(index)].lent;
    return m;
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
        complete<typename F::Queue>(v, c.head);  // copied (or dropped): the buffer is free again
    PortCounters& counters = this->counters(ctx.slot);
    if (m == nullptr) {
        counters.drop(why);
        return false;
    }
    if (F::kOffloads && !offload_from_header(read_header(c, F::kHdr), m, !lent, v.caps)) {
        counters.drop(Drop::bad_offload);
        rte_pktmbuf_free(m);  // a lent buffer goes back to the guest through its free callback
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
    using Q = typename F::Queue;
    if (!usable<Q>(v, memory_.read()))
        return 0;
    Q& q = queue_of<Q>(v);
    std::array<Chain, kBurst>& chains = scratch(v).tx_chains;
    const uint16_t n = fresh_available<Q>(v, std::min(max, uint16_t(chains.size())));
    const MemTable* mem = q.memory();
    q.prefetch_heads(n);
    q.prefetch_used(n);
    // Two passes: walk every chain of the burst and prefetch its frame, then copy or lend
    // them. The cache misses on the descriptors and payloads of the whole burst (lines
    // the guest's core just wrote) overlap instead of coming one frame at a time.
    uint16_t popped = 0;
    while (popped < n && q.pop(chains[popped], false)) {
        const std::byte* frame = chains[popped].seg[0].host;
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
        if (take_frame<F>(ctx, v, index, mem, chains[i], spare[i], pkts[got]))
            ++got;
        if (spare[i] != nullptr)  // dropped before it needed one
            spare[unused++] = spare[i];
    }
    if (unused > 0)
        rte_pktmbuf_free_bulk(spare.data(), unused);
    note_fault(v);  // a chain that failed to pop broke the queue
    return got;
}

VhostPort::ReceiveLoop VhostPort::receive_loop_for(const RingSetup& s)
{
    return with_ring_features(s, []<class F>() -> ReceiveLoop { return &VhostPort::receive_ring<F>; });
}

}  // namespace vusw
