// Lock-free learning table.
#include "vusw/fdb.h"

#include <bit>

namespace vusw {
namespace {

constexpr uint64_t make_value(uint16_t tag, uint32_t now, uint16_t port)
{
    return (uint64_t(tag) << 48) | (uint64_t(now & 0xffffffff) << 16) | port;
}
constexpr uint16_t value_port(uint64_t v) { return uint16_t(v); }
constexpr uint32_t value_time(uint64_t v) { return uint32_t(v >> 16); }
constexpr uint16_t value_tag(uint64_t v) { return uint16_t(v >> 48); }

}  // namespace

Fdb::Fdb(uint32_t capacity)
    : slots_(new Slot[std::bit_ceil(capacity < kProbe ? kProbe : capacity)]),
      mask_(std::bit_ceil(capacity < kProbe ? kProbe : capacity) - 1)
{
}

uint16_t Fdb::lookup(uint64_t mac, uint16_t vlan) const noexcept
{
    const uint64_t key = make_key(mac, vlan);
    const uint32_t h = home(key);
    for (unsigned i = 0; i < kProbe; ++i) {
        const Slot& s = slots_[(h + i) & mask_];
        if (s.key.load(std::memory_order_acquire) != key)
            continue;
        const uint64_t v = s.value.load(std::memory_order_acquire);
        return v != 0 && value_tag(v) == tag_of(key) ? value_port(v) : kUnknown;
    }
    return kUnknown;
}

bool Fdb::learn(uint64_t mac, uint16_t vlan, uint16_t port) noexcept
{
    const uint64_t key = make_key(mac, vlan);
    const uint32_t h = home(key);
    const uint32_t now = now_.load(std::memory_order_relaxed);
    const uint64_t fresh = make_value(tag_of(key), now, port);
    Slot* free_slot = nullptr;
    for (unsigned i = 0; i < kProbe; ++i) {
        Slot& s = slots_[(h + i) & mask_];
        const uint64_t k = s.key.load(std::memory_order_acquire);
        if (k == key) {
            // Refresh at most once a second: a store per packet would bounce the line between cores.
            const uint64_t v = s.value.load(std::memory_order_relaxed);
            if (value_port(v) != port || value_time(v) != now || v == 0)
                s.value.store(fresh, std::memory_order_release);
            return true;
        }
        if (k == 0 && free_slot == nullptr)
            free_slot = &s;
    }
    uint64_t expected = 0;
    if (free_slot == nullptr || !free_slot->key.compare_exchange_strong(expected, key, std::memory_order_acq_rel))
        return false;  // full here, or another core took the slot: learn on a later packet
    free_slot->value.store(fresh, std::memory_order_release);
    learned_.fetch_add(1, std::memory_order_relaxed);
    return true;
}

void Fdb::clear(Slot& s) noexcept
{
    s.value.store(0, std::memory_order_release);
    s.key.store(0, std::memory_order_release);
}

std::size_t Fdb::age(uint32_t max_age_s) noexcept
{
    const uint32_t now = now_.load(std::memory_order_relaxed);
    std::size_t removed = 0;
    for (uint32_t i = 0; i <= mask_; ++i) {
        Slot& s = slots_[i];
        const uint64_t v = s.value.load(std::memory_order_acquire);
        if (s.key.load(std::memory_order_relaxed) != 0 && v != 0 && now - value_time(v) > max_age_s) {
            clear(s);
            ++removed;
        }
    }
    aged_.fetch_add(removed, std::memory_order_relaxed);
    return removed;
}

std::size_t Fdb::flush_port(uint16_t port) noexcept
{
    std::size_t removed = 0;
    for (uint32_t i = 0; i <= mask_; ++i) {
        Slot& s = slots_[i];
        const uint64_t v = s.value.load(std::memory_order_acquire);
        if (s.key.load(std::memory_order_relaxed) != 0 && v != 0 && value_port(v) == port) {
            clear(s);
            ++removed;
        }
    }
    return removed;
}

std::vector<FdbEntry> Fdb::entries() const
{
    const uint32_t now = now_.load(std::memory_order_relaxed);
    std::vector<FdbEntry> out;
    for (uint32_t i = 0; i <= mask_; ++i) {
        const uint64_t k = slots_[i].key.load(std::memory_order_acquire);
        const uint64_t v = slots_[i].value.load(std::memory_order_acquire);
        if (k != 0 && v != 0)
            out.push_back(FdbEntry{k & 0xffffffffffffull, uint16_t((k >> 48) & 0xfff), value_port(v), now - value_time(v)});
    }
    return out;
}

std::size_t Fdb::size() const
{
    std::size_t n = 0;
    for (uint32_t i = 0; i <= mask_; ++i)
        n += slots_[i].key.load(std::memory_order_relaxed) != 0;
    return n;
}

}  // namespace vusw
