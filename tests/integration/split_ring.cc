#include "split_ring.h"

#include <atomic>
#include <cstring>
#include <utility>

namespace vusw::it {

namespace {

constexpr uint64_t kPage = 4096;
uint64_t page_up(uint64_t v) { return (v + kPage - 1) & ~(kPage - 1); }

// Offsets from the ring base: desc | avail | used, each page aligned.
struct Layout {
  uint64_t avail, used, end;
};

Layout layout(uint16_t n) {
  Layout l{};
  l.avail = page_up(16ull * n);
  l.used = l.avail + page_up(6 + 2ull * n);
  l.end = l.used + page_up(6 + 8ull * n);
  return l;
}

}  // namespace

uint64_t SplitRing::footprint(uint16_t size) { return DriverRing::footprint(size, layout(size).end); }

SplitRing::SplitRing(const GuestMemory& mem, uint64_t base_gpa, uint16_t size)
    : DriverRing(mem, base_gpa, size, layout(size).end) {
  Layout l = layout(size);
  avail_gpa_ = base_gpa + l.avail;
  used_gpa_ = base_gpa + l.used;
  desc_ = reinterpret_cast<VringDesc*>(base());
  avail_ = reinterpret_cast<uint16_t*>(base() + l.avail);
  used_ = base() + l.used;
}

VringAddr SplitRing::vring_addr(uint32_t index) const {
  return {index, 0, uva(desc_gpa()), uva(used_gpa_), uva(avail_gpa_), 0};
}

void SplitRing::write_chain(std::span<const uint16_t> slots, std::span<const Seg> segs) {
  for (size_t i = 0; i < segs.size(); ++i) {
    bool last = i + 1 == segs.size();
    uint16_t flags = static_cast<uint16_t>((segs[i].writable ? kDescFWrite : 0) | (last ? 0 : kDescFNext));
    desc_[slots[i]] = {segs[i].gpa, segs[i].len, flags, last ? uint16_t{0} : slots[i + 1]};
  }
  publish_raw(slots.front());
}

void SplitRing::write_indirect(uint16_t id, std::span<const Seg> segs) {
  auto* table = reinterpret_cast<VringDesc*>(indirect(id));
  for (size_t i = 0; i < segs.size(); ++i) {
    bool last = i + 1 == segs.size();
    uint16_t flags = static_cast<uint16_t>((segs[i].writable ? kDescFWrite : 0) | (last ? 0 : kDescFNext));
    table[i] = {segs[i].gpa, segs[i].len, flags, static_cast<uint16_t>(last ? 0 : i + 1)};
  }
  auto table_len = static_cast<uint32_t>(segs.size() * sizeof(VringDesc));
  desc_[id] = {indirect_gpa(id), table_len, kDescFIndirect, 0};
  publish_raw(id);
}

void SplitRing::publish_raw(uint16_t head) {
  avail_[2 + avail_idx_ % size()] = head;
  set_avail_idx_raw(static_cast<uint16_t>(avail_idx_ + 1));
}

void SplitRing::set_avail_idx_raw(uint16_t idx) {
  avail_idx_ = idx;
  // Release: the device must see descriptors and ring entry before the index.
  std::atomic_ref<uint16_t>(avail_[1]).store(idx, std::memory_order_release);
}

void SplitRing::set_no_interrupt(bool on) {
  std::atomic_ref<uint16_t>(avail_[0]).store(on ? 1 : 0, std::memory_order_release);
}

bool SplitRing::kick_needed() {
  const uint16_t old = std::exchange(kicked_avail_, avail_idx_);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!event_idx())
    return !(std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(used_)).load(std::memory_order_acquire) &
             kUsedFNoNotify);
  // vring_need_event(avail_event, new, old): the device asked for a kick at an index we passed.
  const uint16_t event =
      std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(used_ + 4 + 8 * size_t{size()})).load(std::memory_order_acquire);
  return static_cast<uint16_t>(avail_idx_ - event - 1) < static_cast<uint16_t>(avail_idx_ - old);
}

uint16_t SplitRing::used_idx() const {
  return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(used_ + 2)).load(std::memory_order_acquire);
}

std::optional<UsedEntry> SplitRing::next_used() {
  if (last_used_ == used_idx()) return std::nullopt;
  VringUsedElem e;
  std::memcpy(&e, used_ + 4 + 8 * size_t{static_cast<uint16_t>(last_used_ % size())}, sizeof(e));
  ++last_used_;
  return UsedEntry{e.id, e.len};
}

void SplitRing::reclaimed() {
  // used_event (2.7.10): notify once the device has used the entry after those we have.
  if (event_idx()) std::atomic_ref<uint16_t>(avail_[2 + size()]).store(last_used_, std::memory_order_release);
}

}  // namespace vusw::it
