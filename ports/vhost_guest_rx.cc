// Guest RX: frames for the guest, from mbufs into the buffers it posted on its RX rings
// (one copy; mergeable buffers when negotiated).
#include <rte_mbuf.h>
#include <rte_memcpy.h>
#include <rte_prefetch.h>

#include <algorithm>
#include <cstring>

#include "ports/vhost_rings.h"
#include "vusw/offload.h"
#include "vusw/prefetch.h"

namespace vusw {
namespace {

using virtio::NetHeader;

// A virtio-net header but num_buffers, as two plain values: flags, gso_type, hdr_len,
// gso_size and csum_start in one word, then csum_offset (little-endian, like the guest).
struct HeaderWords {
    uint64_t first = 0;
    uint16_t csum_offset = 0;
};

HeaderWords header_words(const NetHeader& h)
{
    return {uint64_t(h.flags) | uint64_t(h.gso_type) << 8 | uint64_t(h.hdr_len) << 16 | uint64_t(h.gso_size) << 32 |
                uint64_t(h.csum_start) << 48,
            h.csum_offset};
}


// Stores a virtio-net header and `num_buffers` (only in the 12-byte layout) with plain
// stores. Never build it on the stack and copy it: that load waits for every older
// store, including the previous frames' stores into cold guest buffers (a failed store
// forward), and cost more than half the 64 B loopback rate.
void store_header(std::byte* dst, HeaderWords w, uint16_t num_buffers, uint32_t hdr_len)
{
    std::memcpy(dst, &w.first, sizeof(w.first));
    std::memcpy(dst + 8, &w.csum_offset, sizeof(w.csum_offset));
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

    void write_header(HeaderWords w, uint16_t num_buffers, uint32_t hdr_len)
    {
        const Segment& s = chains_[chain_].seg[seg_];
        if (off_ != 0 || s.len < hdr_len) {  // a header split over descriptors: rare
            std::array<std::byte, sizeof(NetHeader)> hdr;
            store_header(hdr.data(), w, num_buffers, hdr_len);
            write(hdr.data(), hdr_len);
            return;
        }
        store_header(s.host, w, num_buffers, hdr_len);
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

template <class F>
std::optional<Drop> VhostPort::claim(Vring& v, RxClaim& cl, uint16_t& avail)
{
    using Q = typename F::Queue;
    Q& q = queue_of<Q>(v);
    const uint64_t need = F::kHdr + cl.m->pkt_len;
    const uint16_t start = q.last_avail();
    uint64_t have = 0;
    while (have < need) {
        if (avail == 0 && cl.count < kMaxRxChainsPerFrame)
            avail = fresh_available<Q>(v, kRxScan);  // the count was bounded, or the guest posted more
        if (avail == 0 || cl.count == kMaxRxChainsPerFrame) {
            q.rewind(start);  // not consumed: nothing was written to the used ring
            avail = uint16_t(avail + cl.count);
            cl.count = 0;
            return Drop::no_rx_buffer;
        }
        Chain& c = scratch(v).rx_chains[cl.first + cl.count];
        if (!q.pop(c, true)) {
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
    Chain* chains = &scratch(v).rx_chains[cl.first];
    typename F::Queue& q = queue_of<typename F::Queue>(v);
    if (cl.too_small) {
        q.push_used(chains[0].head, 0);
        return;
    }
    const rte_mbuf* m = cl.m;
    const uint32_t len = m->pkt_len;
    const Segment& first = chains[0].seg[0];
    const HeaderWords words = F::kOffloads ? header_words(offload_header(m, v.caps)) : HeaderWords{};
    if (m->nb_segs == 1 && first.len >= F::kHdr + len) {  // the common case: one buffer holds it all
        store_header(first.host, words, 1, F::kHdr);
        rte_memcpy(first.host + F::kHdr, rte_pktmbuf_mtod(m, const void*), len);
        q.push_used(chains[0].head, F::kHdr + len);
    } else {
        std::array<uint32_t, kMaxRxChainsPerFrame> used{};
        ChainWriter out(chains, used.data());
        out.write_header(words, cl.count, F::kHdr);
        for (const rte_mbuf* s = m; s != nullptr; s = s->next)
            out.write(rte_pktmbuf_mtod(s, const void*), s->data_len);
        for (uint16_t i = 0; i < cl.count; ++i)
            q.push_used(chains[i].head, used[i]);
    }
    PortCounters& counters = this->counters(ctx.slot);
    counters.tx_packets.add();
    counters.tx_bytes.add(len);
    queue_counters(pair_of(v)).tx_packets.add();
}

template <class F>
void VhostPort::transmit_ring(PmdContext& ctx, Vring& v, rte_mbuf** pkts, uint16_t n)
{
    using Q = typename F::Queue;
    PortCounters& counters = this->counters(ctx.slot);
    if (!v.enabled || !usable<Q>(v, memory_.read())) {
        counters.drop(Drop::queue_not_ready, n);
        rte_pktmbuf_free_bulk(pkts, n);
        return;
    }
    // A frame asking for a checksum or segmentation this guest does not take (it did not
    // negotiate GUEST_CSUM / GUEST_TSO*) is done in software first: the slow path.
    for (uint16_t i = 0; i < n; ++i)
        if ((pkts[i]->ol_flags & kOffloadRequests) != 0 && needs_software(pkts[i], v.caps))
            return transmit_in_software<F>(ctx, v, pkts, n);
    fill_ring<F>(ctx, v, pkts, n);
}

template <class F>
void VhostPort::transmit_in_software(PmdContext& ctx, Vring& v, rte_mbuf** pkts, uint16_t n)
{
    PortCounters& counters = this->counters(ctx.slot);
    std::array<rte_mbuf*, kMaxSoftwareSegments> out;
    for (uint16_t i = 0; i < n; ++i) {
        const uint16_t made = resolve_offloads(&pkts[i], 1, v.caps, ctx.pool, counters, out.data(), uint16_t(out.size()));
        if (made > 0)
            fill_ring<F>(ctx, v, out.data(), made);
    }
}

template <class F>
void VhostPort::fill_ring(PmdContext& ctx, Vring& v, rte_mbuf** pkts, uint16_t n)
{
    using Q = typename F::Queue;
    PortCounters& counters = this->counters(ctx.slot);
    Q& q = queue_of<Q>(v);
    PairScratch& scratch = this->scratch(v);
    uint16_t avail = fresh_available<Q>(v, kRxScan);
    q.prefetch_heads(std::min(avail, n));
    q.prefetch_used(std::min(avail, n));
    // Two passes, as for guest TX: claim RX buffers for as many frames as the scratch
    // holds (the descriptor and buffer misses of all of them overlap), then copy.
    uint16_t next = 0;
    while (next < n) {
        uint16_t claimed = 0, chains = 0;
        for (; next < n; ++next) {
            if (!q.ready()) {
                counters.drop(Drop::queue_not_ready);
                continue;
            }
            if (std::size_t(chains) + kMaxRxChainsPerFrame > scratch.rx_chains.size() ||
                claimed == scratch.rx_claims.size())
                break;  // scratch full: copy these first
            RxClaim& cl = scratch.rx_claims[claimed];
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
                rte_prefetch0(rte_pktmbuf_mtod(scratch.rx_claims[k + 1].m, void*));
            fill<F>(ctx, v, scratch.rx_claims[k]);
        }
        if (v.log) [[unlikely]]  // the guest migrates: one test per round of frames
            log_filled(v, std::span(scratch.rx_claims.data(), claimed), F::kHdr);
    }
    rte_pktmbuf_free_bulk(pkts, n);
    note_fault(v);
    (this->*v.loops.notify)(v);  // notify or notify_logged, as the ring was set up
}

void VhostPort::log_filled(Vring& v, std::span<const RxClaim> claims, uint32_t hdr_len)
{
    const DirtyLog* log = log_.read();
    const MemTable* mem = std::visit([](const auto& q) { return q.memory(); }, v.queue);  // the chains' table
    if (log == nullptr || mem == nullptr)
        return;
    const Chain* chains = scratch(v).rx_chains.data();
    uint32_t pages = 0, missed = 0;
    for (const RxClaim& cl : claims) {
        if (cl.too_small)
            continue;  // returned empty: nothing written
        // fill() writes the header and the frame front to back, each buffer segment full
        // before the next: the same walk finds the bytes it wrote.
        uint64_t left = hdr_len + uint64_t(cl.m->pkt_len);
        for (uint16_t i = cl.first; i < cl.first + cl.count && left > 0; ++i)
            for (uint16_t k = 0; k < chains[i].count && left > 0; ++k) {
                const Segment& seg = chains[i].seg[k];
                const uint64_t n = std::min<uint64_t>(left, seg.len);
                uint64_t gpa = 0;
                if (mem->host_to_gpa(seg.host, gpa))
                    pages += log->mark(gpa, n, missed);
                else
                    ++missed;
                left -= n;
            }
    }
    count_logged(v, pages, missed);
}

// Every combination of the features the loops depend on (with_ring_features, vhost_rings.h).
VhostPort::TransmitLoop VhostPort::transmit_loop_for(const RingSetup& s)
{
    return with_ring_features(s, []<class F>() -> TransmitLoop { return &VhostPort::transmit_ring<F>; });
}

}  // namespace vusw
