// libFuzzer target: the split-ring descriptor walk.
//
// The input becomes guest memory: a few config bytes, then the bytes of region A, which
// holds the descriptor table (offset 0), the avail ring (0x1000), the used ring (0x2000)
// and whatever indirect tables and buffers the descriptors point at. Region B follows
// region A in guest-physical space so buffers may span both. Whatever the guest wrote,
// SplitQueue must not crash, and every segment it hands out must lie inside a region.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tests/fuzz/fuzz_support.h"
#include "vusw/virtqueue.h"

using namespace vusw;
using vusw::fuzz::expect;
using vusw::fuzz::violated;
using vusw::fuzz::region;

namespace {

constexpr uint64_t kGpaA = 0x10000, kUvaA = 0x7f0000000000, kSizeA = 0x4000;
constexpr uint64_t kGpaB = 0x14000, kUvaB = 0x7f0000100000, kSizeB = 0x2000;
constexpr uint64_t kDescOff = 0x0, kAvailOff = 0x1000, kUsedOff = 0x2000;

struct Memory {
    std::shared_ptr<const MappedRegion> a = region(kGpaA, kSizeA, kUvaA);
    std::shared_ptr<const MappedRegion> b = region(kGpaB, kSizeB, kUvaB);
    std::unique_ptr<MemTable> table = std::move(*MemTable::from_regions({a, b}));

    bool inside(const Segment& s) const
    {
        for (const auto& r : {a, b}) {
            const std::byte* lo = r->host();
            const std::byte* hi = lo + r->desc().size;
            if (s.host >= lo && s.host < hi && s.len <= uint64_t(hi - s.host))
                return true;
        }
        return false;
    }
};

// The spec's walk (virtio 1.2 §2.7.5), written plainly and independently of SplitQueue,
// reading guest memory only through bounds-checked translate(): the queue must agree with
// it on every input. This is what catches reads outside a table that happen to land in
// mapped memory and so cannot crash.
struct Expected {
    QueueFault fault = QueueFault::none;
    std::vector<Segment> seg;
};

virtio::Desc load(const std::byte* table, uint32_t index)
{
    virtio::Desc d;
    std::memcpy(&d, table + sizeof d * uint64_t(index), sizeof d);
    return d;
}

Expected walk(const MemTable& m, const std::byte* table, uint32_t n, uint16_t index, bool writable)
{
    Expected e;
    for (uint32_t steps = 0;; ++steps) {
        if (steps >= n)
            return {QueueFault::chain_loop, {}};
        if (index >= n)
            return {QueueFault::bad_desc_index, {}};
        const virtio::Desc d = load(table, index);
        if (d.flags & virtio::kDescIndirect)
            return {QueueFault::nested_indirect, {}};
        if (bool(d.flags & virtio::kDescWrite) != writable)
            return {QueueFault::wrong_direction, {}};
        if (d.len == 0)
            return {QueueFault::zero_length_desc, {}};
        for (uint64_t done = 0; done < d.len;) {
            auto piece = m.translate_prefix(GuestPhysAddr{d.addr + done}, d.len - done);
            if (piece.empty() || d.addr + d.len < d.addr)
                return {QueueFault::desc_outside_memory, {}};
            e.seg.push_back(Segment{piece.data(), uint32_t(piece.size())});
            done += piece.size();
        }
        if (!(d.flags & virtio::kDescNext))
            return e;
        index = d.next;
    }
}

Expected reference_pop(const MemTable& m, const RingConfig& c, uint16_t last_avail, bool writable)
{
    const std::byte* desc = m.translate_uva(c.desc, 16 * uint64_t(c.size));
    const std::byte* avail = m.translate_uva(c.avail, 4 + 2 * uint64_t(c.size));
    uint16_t head;
    std::memcpy(&head, avail + 4 + 2 * (last_avail & (c.size - 1)), 2);
    if (head >= c.size)
        return {QueueFault::bad_desc_index, {}};
    const virtio::Desc d = load(desc, head);
    if (!(d.flags & virtio::kDescIndirect))
        return walk(m, desc, c.size, head, writable);
    if ((d.flags & virtio::kDescNext) || d.len == 0 || d.len % 16 != 0)
        return {QueueFault::bad_indirect, {}};
    const std::byte* table = m.translate(GuestPhysAddr{d.addr}, d.len);
    if (table == nullptr)
        return {QueueFault::desc_outside_memory, {}};
    return walk(m, table, d.len / 16, 0, writable);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    static Memory mem;
    if (size < 6)
        return 0;
    // Config: ring size 1..256 (power of two), EVENT_IDX, direction, SET_VRING_BASE.
    const uint16_t ring = uint16_t(1u << (data[0] % 9));
    const bool event_idx = data[1] & 1;
    const bool writable = data[1] & 2;
    const bool misplace = data[1] & 4;  // rings at fuzzed front-end addresses
    uint16_t last_avail = 0;
    std::memcpy(&last_avail, data + 2, 2);
    const uint8_t unpop_every = data[4];
    const uint8_t ring_shift = data[5];
    data += 6;
    size -= 6;

    std::memset(mem.a->host(), 0, kSizeA);
    std::memset(mem.b->host(), 0, kSizeB);
    std::memcpy(mem.a->host(), data, std::min<size_t>(size, kSizeA));
    if (size > kSizeA)
        std::memcpy(mem.b->host(), data + kSizeA, std::min<size_t>(size - kSizeA, kSizeB));

    RingConfig config{FrontendAddr{kUvaA + kDescOff}, FrontendAddr{kUvaA + kAvailOff}, FrontendAddr{kUvaA + kUsedOff},
                      ring, last_avail, event_idx};
    if (misplace) {  // shift the rings, maybe out of memory or misaligned
        config.desc.value += uint64_t(ring_shift) * 24;
        config.avail.value += uint64_t(ring_shift) * 8 + (ring_shift & 1);
        config.used.value += uint64_t(ring_shift) * 40;
    }
    SplitQueue q;
    q.configure(config);
    if (!q.attach(mem.table.get())) {
        expect(q.fault() != QueueFault::none, "attach failed without a fault");
        return 0;
    }
    Chain chain;
    unsigned popped = 0;
    for (unsigned round = 0; round < 4 && q.ready(); ++round) {
        const uint16_t n = q.available();
        expect(n <= ring, "available() beyond the ring size");
        for (uint16_t i = 0; i < n; ++i) {
            const Expected want = reference_pop(*mem.table, config, q.last_avail(), writable);
            const bool ok = q.pop(chain, writable);
            expect(ok == (want.fault == QueueFault::none), "pop disagrees with the spec's walk");
            if (!ok) {
                expect(q.fault() == want.fault, "pop: a different fault than the spec's walk");
                expect(!q.ready(), "a faulted queue is still ready");
                break;
            }
            expect(chain.too_long == (want.seg.size() > Chain::kMaxSegments), "too_long disagrees");
            expect(chain.count == std::min<std::size_t>(want.seg.size(), Chain::kMaxSegments), "segment count disagrees");
            for (uint16_t s = 0; s < chain.count; ++s)
                expect(chain.seg[s].host == want.seg[s].host && chain.seg[s].len == want.seg[s].len,
                       "a segment differs from the spec's walk");
            ++popped;
            expect(chain.head < ring, "head beyond the ring");
            expect(chain.count <= Chain::kMaxSegments, "too many segments");
            expect(chain.count > 0, "a chain without segments");
            uint64_t bytes = 0;
            for (uint16_t s = 0; s < chain.count; ++s) {
                const Segment& seg = chain.seg[s];
                expect(seg.len > 0, "empty segment");
                expect(mem.inside(seg), "segment outside guest memory");
                // Touch both ends, as the copy would.
                volatile std::byte first = seg.host[0], last = seg.host[seg.len - 1];
                (void)first;
                (void)last;
                bytes += seg.len;
            }
            expect(bytes == chain.bytes, "chain.bytes differs from its segments");
            if (unpop_every != 0 && popped % unpop_every == 0) {
                q.unpop(1);
                break;
            }
            q.push_used(chain.head, chain.bytes);
        }
        (void)q.flush_used();
    }
    return 0;
}
