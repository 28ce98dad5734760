// Lent guest TX buffers (zero copy) coming back: an mbuf pointing into guest memory was
// freed, on this core or another, and its descriptor returns to the guest.
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <algorithm>

#include "ports/vhost_rings.h"
#include "vusw/ring.h"

namespace vusw {

void VhostPort::on_mbuf_free(void*, void* opaque)
{
    Loan* loan = static_cast<Loan*>(opaque);
    VhostPort* port = loan->port;
    const uint16_t pair = pair_of(loan->ring);
    if (current_pmd() == int(port->owner(pair))) {
        port->give_back(*loan);
        return;
    }
    // Freed by another core (a NIC or hand-off owned elsewhere): the pair's owner returns
    // it. The ring holds kMaxLoans entries, as many as the pair can lend, so this cannot fail.
    ring_enqueue_burst(port->pairs_[pair].returns, reinterpret_cast<void**>(&loan), 1);
}

void VhostPort::give_back(Loan& loan)
{
    Vring& v = vrings_[loan.ring];
    loan.out = false;
    if (loan.generation == v.generation)
        std::visit([&]<class Q>(Q&) { complete<Q>(v, loan.head); }, v.queue);  // published by the next flush()
    v.loans.store(v.loans.load(std::memory_order_relaxed) - 1, std::memory_order_release);
    --pairs_[pair_of(loan.ring)].lent;
    // Last: once zero, the control thread may free the snapshot.
    loan.table->loans().store(loan.table->loans().load(std::memory_order_relaxed) - 1, std::memory_order_release);
}


void VhostPort::take_returns(uint16_t pair)
{
    void* back[kBurst];
    unsigned n;
    while ((n = ring_dequeue_burst(pairs_[pair].returns, back, kBurst)) > 0)
        for (unsigned i = 0; i < n; ++i)
            give_back(*static_cast<Loan*>(back[i]));
}

bool VhostPort::settle()
{
    for (uint16_t pair = 0; pair < kMaxQueuePairs; ++pair)
        if (pairs_[pair].returns != nullptr)
            take_returns(pair);
    return std::all_of(vrings_.begin(), vrings_.end(), [](const Vring& v) { return v.loans.load(std::memory_order_acquire) == 0; });
}

}  // namespace vusw
