// libFuzzer target: the packed-ring descriptor walk and used-descriptor writes.
//
// The input is a config header, a script of driver and device actions, and then guest
// memory: the bytes of region A, which holds the descriptor ring (offset 0), the driver
// event area (0x1000), the device event area (0x1010) and whatever indirect tables and
// buffers the descriptors point at, then region B, which follows A in guest-physical
// space so buffers may span both. The script interleaves pops, out-of-order pushes,
// flushes, rewinds, new memory snapshots, a well-behaved driver posting chains (so runs
// go round the ring many times) and a hostile one poking ring bytes.
//
// Whatever the guest wrote, PackedQueue must not crash, must agree with a plain walk of
// the spec (virtio 1.2 §2.8) on every pop, and on every count unless flags it had already
// counted changed since (then it must still not hide available chains), must hand out
// only segments inside the attached memory, and must write nothing but the used
// descriptor it is asked for.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tests/fuzz/fuzz_support.h"
#include "vusw/packed_queue.h"

using namespace vusw;
using vusw::fuzz::expect;
using vusw::fuzz::violated;
using vusw::fuzz::region;

namespace {

constexpr uint64_t kGpaA = 0x10000, kUvaA = 0x7f0000000000, kSizeA = 0x4000;
constexpr uint64_t kGpaB = 0x14000, kUvaB = 0x7f0000100000, kSizeB = 0x2000;
constexpr uint64_t kRingOff = 0x0, kDriverEventOff = 0x1000, kDeviceEventOff = 0x1010;
constexpr uint64_t kTablesOff = 0x2000;  // where the scripted driver puts indirect tables
constexpr uint64_t kBufsGpa = kGpaA + 0x3000;

// Flag values from the spec, not from the implementation's header.
constexpr uint16_t NEXT = 0x1, WRITE = 0x2, INDIRECT = 0x4, AVAIL = 0x80, USED = 0x8000;
constexpr uint16_t EVENT_DISABLE = 0x1, EVENT_DESC = 0x2;

struct Memory {
    std::shared_ptr<const MappedRegion> a = region(kGpaA, kSizeA, kUvaA);
    std::shared_ptr<const MappedRegion> b = region(kGpaB, kSizeB, kUvaB);
    std::unique_ptr<MemTable> both = std::move(*MemTable::from_regions({a, b}));
    std::unique_ptr<MemTable> only_a = std::move(*MemTable::from_regions({a}));
    std::vector<std::byte> before = std::vector<std::byte>(kSizeA + kSizeB);

    bool inside(const MemTable& t, const Segment& s) const
    {
        for (const auto& r : t.regions()) {
            const std::byte* lo = r->host();
            const std::byte* hi = lo + r->desc().size;
            if (s.host >= lo && s.host < hi && s.len <= uint64_t(hi - s.host))
                return true;
        }
        return false;
    }
    void snapshot()
    {
        std::memcpy(before.data(), a->host(), kSizeA);
        std::memcpy(before.data() + kSizeA, b->host(), kSizeB);
    }
    // Nothing changed since snapshot() but the 16 bytes at `changed` in region A.
    bool unchanged_but(uint64_t changed) const
    {
        return std::memcmp(before.data(), a->host(), changed) == 0 &&
               std::memcmp(before.data() + changed + 16, a->host() + changed + 16, kSizeA - changed - 16) == 0 &&
               std::memcmp(before.data() + kSizeA, b->host(), kSizeB) == 0;
    }
};

struct RawDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t id;
    uint16_t flags;
};

RawDesc load(const std::byte* table, uint32_t index)
{
    RawDesc d;
    std::memcpy(&d, table + sizeof d * uint64_t(index), sizeof d);
    return d;
}

// A ring position: index and wrap counter.
struct Pos {
    uint16_t index;
    bool wrap;
    void step(uint16_t by, uint16_t size)
    {
        for (uint16_t i = 0; i < by; ++i)
            if (++index == size) {
                index = 0;
                wrap = !wrap;
            }
    }
    uint16_t encoded() const { return uint16_t(index | (wrap ? 0x8000 : 0)); }
};

// The spec's walk (virtio 1.2 §2.8.6, §2.8.7), written plainly, reading guest memory
// only through bounds-checked translate().
struct Expected {
    QueueFault fault = QueueFault::none;
    std::vector<Segment> seg;
    uint16_t id = 0;
    uint16_t taken = 0;
};

Expected failed(QueueFault f)
{
    Expected e;
    e.fault = f;
    return e;
}

bool is_avail(uint16_t flags, bool wrap)
{
    return bool(flags & AVAIL) == wrap && bool(flags & USED) == !wrap;
}

QueueFault buffer(const MemTable& m, const RawDesc& d, bool writable, std::vector<Segment>& seg)
{
    if (bool(d.flags & WRITE) != writable)
        return QueueFault::wrong_direction;
    if (d.len == 0)
        return QueueFault::zero_length_desc;
    if (d.addr + d.len < d.addr)
        return QueueFault::desc_outside_memory;
    for (uint64_t done = 0; done < d.len;) {
        auto piece = m.translate_prefix(GuestPhysAddr{d.addr + done}, d.len - done);
        if (piece.empty())
            return QueueFault::desc_outside_memory;
        seg.push_back(Segment{piece.data(), uint32_t(piece.size())});
        done += piece.size();
    }
    return QueueFault::none;
}

Expected reference_pop(const MemTable& m, const std::byte* ring, uint16_t size, Pos at, bool writable)
{
    Expected e;
    RawDesc d;
    do {
        if (e.taken == size)
            return failed(QueueFault::chain_loop);
        d = load(ring, at.index);
        if (!is_avail(d.flags, at.wrap))
            return failed(QueueFault::partial_chain);
        if (d.flags & INDIRECT) {
            if (e.taken > 0)
                return failed(QueueFault::nested_indirect);
            if ((d.flags & NEXT) || d.len == 0 || d.len % 16 != 0)
                return failed(QueueFault::bad_indirect);
            const std::byte* table = m.translate(GuestPhysAddr{d.addr}, d.len);
            if (table == nullptr)
                return failed(QueueFault::desc_outside_memory);
            for (uint32_t i = 0; i < d.len / 16; ++i) {
                RawDesc t = load(table, i);
                if (t.flags & INDIRECT)
                    return failed(QueueFault::nested_indirect);
                if (!writable)
                    t.flags &= uint16_t(~WRITE);  // a TX table's WRITE means nothing (DPDK's virtio PMD sets it)
                if (const QueueFault f = buffer(m, t, writable, e.seg); f != QueueFault::none)
                    return failed(f);
            }
        } else if (const QueueFault f = buffer(m, d, writable, e.seg); f != QueueFault::none) {
            return failed(f);
        }
        ++e.taken;
        at.step(1, size);
    } while (d.flags & NEXT);
    if (d.id >= size)
        return failed(QueueFault::bad_desc_index);
    e.id = d.id;
    return e;
}

uint16_t reference_available(const std::byte* ring, uint16_t size, Pos at, uint16_t limit)
{
    uint16_t heads = 0;
    bool inside_chain = false;
    for (uint16_t i = 0; i < size && heads < limit; ++i) {
        const RawDesc d = load(ring, at.index);
        if (!is_avail(d.flags, at.wrap))
            break;
        if (!inside_chain)
            ++heads;
        inside_chain = d.flags & NEXT;
        at.step(1, size);
    }
    return heads;
}

// vhost_need_event for packed rings, as DPDK's vhost library writes it (uint16
// arithmetic, positions of the other lap moved back by the ring size); valid when the
// used index moved by 1..size since the last flush.
bool reference_need_event(uint16_t off_wrap, Pos old, Pos now, uint16_t size)
{
    uint16_t off = off_wrap & 0x7fff;
    uint16_t old_index = old.index;
    if (now.index <= old_index)
        old_index = uint16_t(old_index - size);
    if (now.wrap != bool(off_wrap >> 15))
        off = uint16_t(off - size);
    return uint16_t(now.index - off - 1) < uint16_t(now.index - old_index);
}

struct Action {
    uint8_t kind;
    uint8_t a;
    uint16_t b;
    uint32_t c;
};

// The device side as the vhost port drives it, checked against the references.
class Run {
public:
    Run(Memory& mem, const RingConfig& config, bool writable)
        : mem_(mem), config_(config), writable_(writable), driver_{uint16_t(config.last_avail & 0x7fff),
          bool(config.last_avail >> 15)}, used_{uint16_t(config.last_used & 0x7fff), bool(config.last_used >> 15)},
          signalled_(used_), descs_of_(config.size, 1), seen_(config.size, -1)
    {
    }

    bool attach(const MemTable* t)
    {
        table_ = t;
        return q_.attach(t);
    }
    void configure()
    {
        q_.configure(config_);
        signalled_valid_ = config_.last_used == 0x8000;
    }
    PackedQueue& queue() { return q_; }

    void act(const Action& x)
    {
        switch (x.kind % 8) {
        case 0: pop(x.a, x.b); break;
        case 1: push(uint8_t(x.a % 8 + 1), x.b, x.c); break;
        case 2: flush(); break;
        case 3: post(x); break;
        case 4: poke(x.b, uint16_t(x.c)); break;
        case 5: rewind(); break;
        case 6: mark(); break;
        case 7: expect(attach(x.a & 1 ? mem_.only_a.get() : mem_.both.get()) == (q_.fault() == QueueFault::none),
                       "attach's result is not the fault state");
            forget_seen();  // attach starts available()'s count afresh
            break;
        }
    }

private:
    const std::byte* ring() const { return mem_.a->host() + kRingOff; }
    Pos avail_pos() const { return Pos{uint16_t(q_.last_avail() & 0x7fff), bool(q_.last_avail() >> 15)}; }

    void pop(uint16_t limit, uint16_t most)
    {
        const bool ready = q_.ready();
        const uint16_t n = q_.available(limit);
        expect(n <= limit, "available() beyond the limit");
        if (!ready) {
            expect(n == 0, "a broken queue has chains available");
            return;
        }
        const uint16_t fresh = reference_available(ring(), config_.size, avail_pos(), limit);
        stale_ = stale_ || seen_changed();
        if (!stale_)
            expect(n == fresh, "available() disagrees with the scan");
        else  // pop() below still has to agree with the spec's walk, chain by chain
            expect(limit == 0 || fresh == 0 || n > 0, "a kept count hides available chains");
        note_seen(avail_pos(), limit);
        q_.prefetch_heads(n);
        q_.prefetch_used(n);
        for (uint16_t i = 0; i < std::min(n, most); ++i) {
            const Pos at = avail_pos();
            const Expected want = reference_pop(*table_, ring(), config_.size, at, writable_);
            const bool ok = q_.pop(chain_, writable_);
            expect(ok == (want.fault == QueueFault::none), "pop disagrees with the spec's walk");
            if (!ok) {
                expect(q_.fault() == want.fault, "pop: a different fault than the spec's walk");
                expect(!q_.ready() && q_.available(UINT16_MAX) == 0, "a faulted queue is still processed");
                return;
            }
            check_chain(want);
            unsee(at, want.taken);
            outstanding_.push_back(chain_.head);
            descs_of_[chain_.head] = want.taken;
        }
    }

    void check_chain(const Expected& want)
    {
        expect(chain_.head == want.id, "buffer id disagrees");
        expect(chain_.too_long == (want.seg.size() > Chain::kMaxSegments), "too_long disagrees");
        expect(chain_.count == std::min<std::size_t>(want.seg.size(), Chain::kMaxSegments), "segment count disagrees");
        uint64_t bytes = 0;
        for (uint16_t s = 0; s < chain_.count; ++s) {
            const Segment& seg = chain_.seg[s];
            expect(seg.host == want.seg[s].host && seg.len == want.seg[s].len, "a segment differs from the spec's walk");
            expect(seg.len > 0, "empty segment");
            expect(mem_.inside(*table_, seg), "segment outside the attached memory");
            volatile std::byte first = seg.host[0], last = seg.host[seg.len - 1];  // as the copy would
            (void)first;
            (void)last;
            bytes += seg.len;
        }
        expect(bytes == chain_.bytes, "chain.bytes differs from its segments");
    }

    // Returns up to `n` outstanding buffers, starting at `pick` (out of order).
    void push(uint8_t n, uint16_t pick, uint32_t len)
    {
        for (uint8_t i = 0; i < n && !outstanding_.empty(); ++i) {
            const auto at = outstanding_.begin() + pick % outstanding_.size();
            const uint16_t id = *at;
            outstanding_.erase(at);
            marked_ = std::min(marked_, outstanding_.size());
            const bool writes = q_.memory() != nullptr && q_.fault() != QueueFault::ring_outside_memory;
            const uint64_t slot = kRingOff + 16 * uint64_t(used_.index);
            mem_.snapshot();
            q_.push_used(id, len + i);
            if (!writes) {
                expect(mem_.unchanged_but(0) && std::memcmp(mem_.before.data(), mem_.a->host(), 16) == 0,
                       "push_used wrote to a ring that is not attached");
                continue;
            }
            expect(mem_.unchanged_but(slot), "push_used wrote outside the used descriptor");
            const RawDesc u = load(ring(), used_.index);
            expect(u.id == id && u.len == len + i, "used descriptor id/len");
            expect(u.flags == (used_.wrap ? AVAIL | USED : 0), "used descriptor flags");
            expect(std::memcmp(&u.addr, mem_.before.data() + slot, 8) == 0, "push_used changed addr");
            used_.step(descs_of_[id], config_.size);
            moved_ += descs_of_[id];
            expect(q_.last_used() == used_.encoded(), "last_used disagrees");
        }
    }

    void flush()
    {
        const bool attached = q_.memory() != nullptr && q_.fault() != QueueFault::ring_outside_memory;
        const auto* event = reinterpret_cast<const uint16_t*>(mem_.a->host() + kDriverEventOff);
        const uint16_t off_wrap = event[0], flags = event[1];
        const bool notify = q_.flush_used();
        const bool moved = used_.encoded() != signalled_.encoded();
        if (!attached || !moved || flags == EVENT_DISABLE)
            expect(!notify, "notified with nothing to say or notifications disabled");
        else if (flags != EVENT_DESC || !config_.event_idx)
            expect(notify, "notifications enabled but none");
        else {
            // A ring configured at a position other than the start notifies at its first
            // DESC-mode decision whatever off_wrap says (a notification may have been lost).
            if (!signalled_valid_)
                expect(notify, "first DESC-mode flush of a ring taken over at a position: no notification");
            else if (moved_ <= config_.size)
                expect(notify == reference_need_event(off_wrap, signalled_, used_, config_.size), "DESC-mode notification");
            signalled_valid_ = true;
        }
        if (attached) {
            signalled_ = used_;
            moved_ = 0;
        }
    }

    // A well-behaved driver posting a chain of 1-4 buffers (or one indirect table) at
    // its own next position, head flags last.
    void post(const Action& x)
    {
        const uint16_t n = uint16_t(1 + x.a % 4);
        const uint16_t write = (x.a & 0x10) ? WRITE : 0;
        const uint16_t id = uint16_t(x.b % (config_.size + 1));  // sometimes one too big
        const uint64_t addr = kBufsGpa + (x.c >> 20) % 0x1f00;  // may span into region B
        const uint32_t len = 1 + (x.c & 0x3ff);
        auto* desc = reinterpret_cast<RawDesc*>(mem_.a->host() + kRingOff);
        if (x.a & 0x20) {  // one indirect descriptor naming a table of n entries
            const uint64_t table = kTablesOff + 16 * (x.b % 64);
            for (uint16_t i = 0; i < n; ++i) {
                const RawDesc e{addr + 16 * i, len, 0, write};
                std::memcpy(mem_.a->host() + table + 16 * i, &e, sizeof e);
            }
            desc[driver_.index] = RawDesc{kGpaA + table, uint32_t(16 * n), id, uint16_t(INDIRECT | avail_bits(driver_.wrap))};
            driver_.step(1, config_.size);
            return;
        }
        const Pos head = driver_;
        for (uint16_t i = 0; i < n; ++i) {
            const uint16_t f = uint16_t(write | (i + 1 < n ? NEXT : 0));
            desc[driver_.index] = RawDesc{addr + 64 * i, len, id, uint16_t(i == 0 ? 0 : f | avail_bits(driver_.wrap))};
            driver_.step(1, config_.size);
        }
        desc[head.index].flags = uint16_t(write | (n > 1 ? NEXT : 0) | avail_bits(head.wrap));
    }
    static uint16_t avail_bits(bool wrap) { return wrap ? AVAIL : USED; }

    // A hostile driver rewriting two bytes of the ring, the event areas or the tables.
    void poke(uint16_t where, uint16_t value)
    {
        std::memcpy(mem_.a->host() + 2 * (where % 0x1800), &value, 2);
    }

    void mark()
    {
        mark_ = q_.last_avail();
        marked_ = outstanding_.size();
    }
    // Puts back the chains popped since the last mark (RX without buffers enough).
    void rewind()
    {
        if (!q_.ready())
            return;
        q_.rewind(mark_);
        forget_seen();
        outstanding_.resize(std::min(outstanding_.size(), marked_));
        expect(q_.last_avail() == mark_, "rewind did not restore last_avail");
    }

    // available() keeps what it scanned (each descriptor's flags are read once): its count
    // is a fresh scan's as long as no flags it saw changed since (a hostile poke, a driver
    // posting over unconsumed descriptors, used descriptors written where it scanned). seen_
    // holds the flags scans passed at positions not popped since (-1: none); a change makes
    // the count stale until the queue starts afresh (rewind, attach).
    uint16_t flags_at(uint16_t index) const { return load(ring(), index).flags; }
    bool seen_changed() const
    {
        for (uint16_t i = 0; i < config_.size; ++i)
            if (seen_[i] >= 0 && seen_[i] != flags_at(i))
                return true;
        return false;
    }
    void note_seen(Pos at, uint16_t limit)
    {
        uint16_t heads = 0;
        bool inside_chain = false;
        for (uint16_t i = 0; i < config_.size && heads < limit; ++i) {
            const uint16_t flags = flags_at(at.index);
            if (!is_avail(flags, at.wrap))
                break;
            seen_[at.index] = flags;
            heads = uint16_t(heads + !inside_chain);
            inside_chain = flags & NEXT;
            at.step(1, config_.size);
        }
    }
    void unsee(Pos at, uint16_t descs)
    {
        for (uint16_t i = 0; i < descs; ++i, at.step(1, config_.size))
            seen_[at.index] = -1;
    }
    void forget_seen()
    {
        std::fill(seen_.begin(), seen_.end(), -1);
        stale_ = false;
    }

    Memory& mem_;
    RingConfig config_;
    bool writable_;
    PackedQueue q_;
    const MemTable* table_ = nullptr;
    Chain chain_;
    Pos driver_;     // the scripted driver's next position
    Pos used_;       // where the next used descriptor goes
    Pos signalled_;  // used_ at the last flush
    bool signalled_valid_ = true;  // configure() at a position other than the start clears it
    uint32_t moved_ = 0;  // descriptors used since the last flush
    std::vector<uint16_t> descs_of_;
    std::vector<uint16_t> outstanding_;  // popped, not yet pushed, in pop order
    uint16_t mark_ = 0;
    std::size_t marked_ = 0;
    std::vector<int32_t> seen_;
    bool stale_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    static Memory mem;
    constexpr size_t kHeader = 8;
    if (size < kHeader)
        return 0;
    // Header: ring size 1..256 (any, not only powers of two), flags, the two vring bases
    // (index reduced to 0..size, so size itself, an invalid base, stays reachable), the
    // ring shift for misplaced rings, and the number of 8-byte actions that follow.
    const uint16_t ring = uint16_t(1 + data[0]);
    const bool writable = data[1] & 1;
    const bool event_idx = data[1] & 2;
    const bool misplace = data[1] & 4;
    const auto base = [&](const uint8_t* p) {
        uint16_t raw;
        std::memcpy(&raw, p, 2);
        return uint16_t(((raw & 0x7fff) % (ring + 1)) | (raw & 0x8000));
    };
    const uint16_t last_avail = base(data + 2), last_used = base(data + 4);
    const uint8_t ring_shift = data[6];
    const size_t script_len = std::min<size_t>(data[7], (size - kHeader) / sizeof(Action));
    std::vector<Action> script(script_len);
    if (script_len != 0)
        std::memcpy(script.data(), data + kHeader, script_len * sizeof(Action));
    data += kHeader + script_len * sizeof(Action);
    size -= kHeader + script_len * sizeof(Action);

    std::memset(mem.a->host(), 0, kSizeA);
    std::memset(mem.b->host(), 0, kSizeB);
    std::memcpy(mem.a->host(), data, std::min<size_t>(size, kSizeA));
    if (size > kSizeA)
        std::memcpy(mem.b->host(), data + kSizeA, std::min<size_t>(size - kSizeA, kSizeB));

    RingConfig config{FrontendAddr{kUvaA + kRingOff}, FrontendAddr{kUvaA + kDriverEventOff},
                      FrontendAddr{kUvaA + kDeviceEventOff}, ring, last_avail, event_idx};
    config.packed = true;
    config.last_used = last_used;
    if (misplace) {  // shift the rings, maybe out of memory or misaligned
        config.desc.value += uint64_t(ring_shift) * 24;
        config.avail.value += uint64_t(ring_shift) * 8 + (ring_shift & 2);
        config.used.value += uint64_t(ring_shift) * 40 + (ring_shift & 1);
    }
    Run run(mem, config, writable);
    run.configure();
    if (!run.attach(mem.both.get())) {
        expect(!run.queue().ready(), "attach failed but the queue is ready");
        expect(run.queue().available(UINT16_MAX) == 0, "a queue that failed to attach has chains available");
        return 0;
    }
    if (misplace)
        return 0;  // the checks below read the rings where they are not moved
    if (script.empty()) {  // no script: pop everything, return it in order, four times
        for (int round = 0; round < 4; ++round) {
            run.act(Action{0, 255, 0xffff, 0});
            for (int i = 0; i < 32; ++i)
                run.act(Action{1, 7, 0, 0});
            run.act(Action{2, 0, 0, 0});
        }
    }
    for (const Action& x : script)
        run.act(x);
    return 0;
}
