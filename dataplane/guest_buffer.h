// Flattening one guest buffer into a Chain's host segments (dataplane-internal), shared
// by the split and packed queues so both check a descriptor's buffer the same way.
#pragma once

#include <cstdint>

#include "vusw/guest_memory.h"
#include "vusw/virtqueue.h"

namespace vusw {

// Appends [addr, addr+len) to `chain`, one segment per region it touches. More segments
// than the chain holds set chain.too_long but still walk the buffer: the chain must be
// validated and returned whole. Returns the fault the buffer is, or QueueFault::none.
inline QueueFault append_buffer(const MemTable& mem, uint64_t addr, uint32_t len, Chain& chain)
{
    if (len == 0)
        return QueueFault::zero_length_desc;
    if (addr + len < addr)
        return QueueFault::desc_outside_memory;
    for (uint32_t done = 0; done < len;) {
        const auto piece = mem.translate_prefix(GuestPhysAddr{addr + done}, len - done);
        if (piece.empty())
            return QueueFault::desc_outside_memory;
        if (chain.count == Chain::kMaxSegments) {
            chain.too_long = true;
        } else {
            chain.seg[chain.count++] = Segment{piece.data(), uint32_t(piece.size())};
            chain.bytes += piece.size();
        }
        done += uint32_t(piece.size());
    }
    return QueueFault::none;
}

}  // namespace vusw
