// The vhost port's ring helpers shared by its hot loops, and what those loops are
// compiled for: the queue type and the negotiated features they depend on. Private to
// ports/ (vhost_port.cc, vhost_guest_tx.cc, vhost_guest_rx.cc, vhost_loans.cc).
#pragma once

#include <unistd.h>

#include <cstdint>

#include "ports/vhost_port.h"

namespace vusw {

template <class Q, uint16_t Hdr, bool MrgRxbuf, bool InOrder, bool Offloads>
struct RingFeatures {
    using Queue = Q;                               // SplitQueue or PackedQueue
    static constexpr uint16_t kHdr = Hdr;          // virtio-net header bytes
    static constexpr bool kMrgRxbuf = MrgRxbuf;    // a frame may take several RX buffers
    static constexpr bool kInOrder = InOrder;      // used in the order made available
    static constexpr bool kOffloads = Offloads;    // the header carries checksum/segmentation requests
};

// Calls make.template operator()<F>() with the RingFeatures that match `s`: every
// combination is instantiated once, and a ring picks its own when it is set up. The
// header is 12 bytes with VERSION_1 or MRG_RXBUF, else 10.
template <class Make>
auto with_ring_features(const RingSetup& s, Make make)
{
    const auto offloads = [&]<class Q, uint16_t Hdr, bool Mrg, bool InOrder>() {
        if (s.offloads)
            return make.template operator()<RingFeatures<Q, Hdr, Mrg, InOrder, true>>();
        return make.template operator()<RingFeatures<Q, Hdr, Mrg, InOrder, false>>();
    };
    const auto order = [&]<class Q, uint16_t Hdr, bool Mrg>() {
        if (s.in_order)
            return offloads.template operator()<Q, Hdr, Mrg, true>();
        return offloads.template operator()<Q, Hdr, Mrg, false>();
    };
    const auto layout = [&]<class Q>() {
        if (s.mrg_rxbuf)
            return order.template operator()<Q, 12, true>();
        if (s.hdr_len == 12)
            return order.template operator()<Q, 12, false>();
        return order.template operator()<Q, 10, false>();
    };
    if (s.ring.packed)
        return layout.template operator()<PackedQueue>();
    return layout.template operator()<SplitQueue>();
}

template <class Q>
bool VhostPort::usable(Vring& v, const MemTable* mem)
{
    if (!v.started)
        return false;
    Q& q = queue_of<Q>(v);
    if (q.memory() != mem)
        q.attach(mem);  // new snapshot: translate the rings again
    note_fault(v);
    return q.ready();
}

template <class Q>
uint16_t VhostPort::fresh_available(Vring& v, uint16_t limit)
{
    // Order matters: the avail index first (acquire), the memory table after it. A guest
    // posts buffers in a new region only after our ADD_MEM_REG ack, and the table with that
    // region was published before the ack: reading the table after the index guarantees
    // we translate those buffers with it, never with the batch's older snapshot.
    Q& q = queue_of<Q>(v);
    const uint16_t n = q.available(limit);
    const MemTable* mem = memory_.read();
    if (n > 0 && q.memory() != mem && !q.attach(mem)) {
        note_fault(v);
        return 0;
    }
    return q.ready() ? n : 0;
}

inline void VhostPort::wake(const Vring& v)
{
    if (v.call_fd >= 0) {
        const uint64_t one = 1;
        [[maybe_unused]] ssize_t r = ::write(v.call_fd, &one, sizeof(one));  // the one syscall on the packet path
    }
}

template <class Q>
void VhostPort::notify(Vring& v)
{
    if (queue_of<Q>(v).flush_used())
        wake(v);
}

// notify() while the guest migrates: the used-ring bytes just published are marked in
// the dirty log after they are written and before the guest is woken.
template <class Q>
void VhostPort::notify_logged(Vring& v)
{
    Q& q = queue_of<Q>(v);
    const uint16_t since = q.published_used();
    const bool signal = q.flush_used();
    if (const DirtyLog* log = log_.read(); log != nullptr) {
        uint32_t missed = 0;
        const uint32_t pages = q.log_used(*log, since, missed);
        count_logged(v, pages, missed);
    }
    if (signal)
        wake(v);
}

template <class Q>
void VhostPort::complete(Vring& v, uint16_t head)
{
    Q& q = queue_of<Q>(v);
    if (v.order_first == v.order_end) {
        q.push_used(head, 0);  // nothing older is still out
        return;
    }
    v.finished[head] = 1;
    while (v.order_first != v.order_end) {
        const uint16_t oldest = v.order[v.order_first & v.order_mask];
        if (!v.finished[oldest])
            break;
        v.finished[oldest] = 0;
        ++v.order_first;
        q.push_used(oldest, 0);
    }
}

}  // namespace vusw
