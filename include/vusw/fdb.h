// L2 forwarding database: (MAC, VLAN) -> port, learned from traffic, aged by the control thread.
//
// Lookups and learning run on PMD cores without locks: each slot is two 64-bit words
// (key, value) updated with single atomic stores; the value carries a tag of its key, so a
// reader that races with a slot being reused sees "unknown" (and floods), never a wrong port.
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace vusw {

// A MAC address (6 bytes as on the wire) as the FDB keys it: a number, first byte most
// significant (as printed). Two loads combined in registers: one 6-byte memcpy into a
// uint64_t becomes two stack stores and an 8-byte reload that cannot be store-forwarded.
inline uint64_t mac_key(const uint8_t* mac) noexcept
{
    uint32_t high = 0;
    uint16_t low = 0;
    std::memcpy(&high, mac, sizeof(high));
    std::memcpy(&low, mac + sizeof(high), sizeof(low));
    if constexpr (std::endian::native == std::endian::little)
        return uint64_t(std::byteswap(high)) << 16 | std::byteswap(low);
    return uint64_t(high) << 16 | low;
}

struct FdbEntry {
    uint64_t mac;     // 48-bit MAC, network order packed big-endian into the low bits
    uint16_t vlan;
    uint16_t port;
    uint32_t age_s;   // seconds since last seen
};

class Fdb {
public:
    static constexpr uint16_t kUnknown = 0xffff;

    explicit Fdb(uint32_t capacity = 1u << 16);  // rounded up to a power of two

    // PMD: the port that last sent from (mac, vlan), or kUnknown.
    uint16_t lookup(uint64_t mac, uint16_t vlan) const noexcept;
    // PMD: records that (mac, vlan) lives behind `port`. Returns false if the table is full.
    bool learn(uint64_t mac, uint16_t vlan, uint16_t port) noexcept;

    // Control: the coarse clock learning stamps entries with (seconds).
    void tick(uint32_t now_s) noexcept { now_.store(now_s, std::memory_order_relaxed); }
    // Control: removes entries not seen for max_age_s; returns how many.
    std::size_t age(uint32_t max_age_s) noexcept;
    // Control: forgets every entry pointing at `port` (port went down).
    std::size_t flush_port(uint16_t port) noexcept;
    std::vector<FdbEntry> entries() const;
    std::size_t size() const;

    uint64_t learned() const { return learned_.load(std::memory_order_relaxed); }
    uint64_t aged() const { return aged_.load(std::memory_order_relaxed); }

private:
    static constexpr unsigned kProbe = 8;
    struct Slot {
        std::atomic<uint64_t> key{0};    // 0 = free; else valid bit | vlan << 48 | mac
        std::atomic<uint64_t> value{0};  // 0 = none; else tag << 48 | time << 16 | port
    };
    static uint64_t make_key(uint64_t mac, uint16_t vlan) { return (1ull << 63) | (uint64_t(vlan & 0xfff) << 48) | (mac & 0xffffffffffffull); }
    static uint16_t tag_of(uint64_t key) { return uint16_t((key * 0x9e3779b97f4a7c15ull) >> 40); }
    uint32_t home(uint64_t key) const { return uint32_t((key * 0x9e3779b97f4a7c15ull) >> 32) & mask_; }
    void clear(Slot& s) noexcept;

    std::unique_ptr<Slot[]> slots_;
    uint32_t mask_;
    std::atomic<uint32_t> now_{0};
    std::atomic<uint64_t> learned_{0};
    std::atomic<uint64_t> aged_{0};
};

}  // namespace vusw
