#include "packed_ring.h"

#include <atomic>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace vusw::it {

namespace {

constexpr uint64_t kPage = 4096;
uint64_t page_up(uint64_t v) { return (v + kPage - 1) & ~(kPage - 1); }

// Offsets from the ring base: descriptors | driver event | device event (own cache lines).
struct Layout {
  uint64_t driver_event, device_event, end;
};

Layout layout(uint16_t n) {
  Layout l{};
  l.driver_event = page_up(16ull * n);
  l.device_event = l.driver_event + 64;
  l.end = l.device_event + 64;
  return l;
}

uint16_t load_flags(const PackedDesc& d) {
  return std::atomic_ref<const uint16_t>(d.flags).load(std::memory_order_acquire);
}

}  // namespace

uint64_t PackedRing::footprint(uint16_t size) { return DriverRing::footprint(size, layout(size).end); }

PackedRing::PackedRing(const GuestMemory& mem, uint64_t base_gpa, uint16_t size)
    : DriverRing(mem, base_gpa, size, layout(size).end) {
  if (size > 32768) throw std::invalid_argument("packed ring larger than 32768");
  Layout l = layout(size);
  driver_event_gpa_ = base_gpa + l.driver_event;
  device_event_gpa_ = base_gpa + l.device_event;
  desc_ = reinterpret_cast<PackedDesc*>(base());
  driver_event_ = reinterpret_cast<PackedEvent*>(base() + l.driver_event);
  device_event_ = reinterpret_cast<PackedEvent*>(base() + l.device_event);
}

VringAddr PackedRing::vring_addr(uint32_t index) const {
  return {index, 0, uva(desc_gpa()), uva(device_event_gpa_), uva(driver_event_gpa_), 0};
}

void PackedRing::advance(uint16_t& pos, bool& wrap, uint16_t n) const {
  uint32_t p = uint32_t{pos} + n;
  while (p >= size()) {
    p -= size();
    wrap = !wrap;
  }
  pos = static_cast<uint16_t>(p);
}

bool PackedRing::is_used(uint16_t pos, bool wrap) const {
  uint16_t f = load_flags(desc_[pos]);
  return ((f & kDescFAvail) != 0) == wrap && ((f & kDescFUsed) != 0) == wrap;
}

uint32_t PackedRing::vring_base() const {
  uint16_t pos = used_pos_;
  bool wrap = used_wrap_;
  // Entries of a batch not handed out yet are already behind used_pos_.
  auto next = outstanding().begin();  // with IN_ORDER: the oldest buffer not yet seen used
  for (uint32_t seen = 0; seen < size() && is_used(pos, wrap); ++seen) {
    const uint16_t id = desc_[pos].id;
    uint32_t n = chain_len(id);
    if (n != 0 && in_order())
      for (n = 0; next != outstanding().end();)
        if (n += chain_len(*next); *next++ == id) break;
    advance(pos, wrap, static_cast<uint16_t>(n == 0 ? 1 : n));
  }
  uint32_t half = pos | (wrap ? kPackedWrapBit : 0);
  return half | half << 16;
}

void PackedRing::write_driver_event(uint16_t flags) {
  std::atomic_ref<uint16_t>(driver_event_->off_wrap)
      .store(static_cast<uint16_t>(used_pos_ | (used_wrap_ ? kPackedWrapBit : 0)), std::memory_order_relaxed);
  std::atomic_ref<uint16_t>(driver_event_->flags).store(flags, std::memory_order_release);
}

void PackedRing::set_no_interrupt(bool on) {
  no_interrupt_ = on;
  write_driver_event(on ? kEventFlagDisable : event_idx() ? kEventFlagDesc : kEventFlagEnable);
}

bool PackedRing::kick_needed() {
  // Buffers made available since the last call, counted in ring positions.
  uint32_t added = avail_pos_ + (avail_wrap_ == kicked_wrap_ ? 0u : size()) - kicked_pos_;
  kicked_pos_ = avail_pos_;
  kicked_wrap_ = avail_wrap_;
  if (added == 0) return false;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const PackedEvent ev = device_event();
  if (ev.flags != kEventFlagDesc) return ev.flags != kEventFlagDisable;
  // As Linux's virtqueue_kick_prepare_packed: an event offset in the other lap is
  // moved back by a ring size, then vring_need_event(event, new, old) on u16.
  auto event = static_cast<uint16_t>(ev.off_wrap & ~kPackedWrapBit);
  if (((ev.off_wrap & kPackedWrapBit) != 0) != avail_wrap_) event = static_cast<uint16_t>(event - size());
  const auto now = static_cast<uint16_t>(avail_pos_);
  const auto old = static_cast<uint16_t>(now - added);
  return static_cast<uint16_t>(now - event - 1) < static_cast<uint16_t>(now - old);
}

PackedEvent PackedRing::driver_event() const {
  return {std::atomic_ref<uint16_t>(driver_event_->off_wrap).load(std::memory_order_acquire),
          std::atomic_ref<uint16_t>(driver_event_->flags).load(std::memory_order_acquire)};
}

PackedEvent PackedRing::device_event() const {
  return {std::atomic_ref<uint16_t>(device_event_->off_wrap).load(std::memory_order_acquire),
          std::atomic_ref<uint16_t>(device_event_->flags).load(std::memory_order_acquire)};
}

void PackedRing::set_flags_raw(uint16_t pos, uint16_t flags) {
  std::atomic_ref<uint16_t>(desc_[pos].flags).store(flags, std::memory_order_release);
}

void PackedRing::set_avail_cursor(uint16_t pos, bool wrap) {
  avail_pos_ = static_cast<uint16_t>(pos % size());
  avail_wrap_ = wrap;
}

void PackedRing::publish_raw(std::span<const PackedDesc> descs, bool wrap_bits) {
  if (descs.empty()) return;
  const uint16_t head_pos = avail_pos_;
  uint16_t head_flags = 0;
  for (size_t i = 0; i < descs.size(); ++i) {
    PackedDesc d = descs[i];
    if (wrap_bits) d.flags = static_cast<uint16_t>((d.flags & ~(kDescFAvail | kDescFUsed)) | avail_bits(avail_wrap_));
    if (i == 0) {
      // Everything but the flags now; the flags once the rest of the chain is written.
      desc_[avail_pos_].addr = d.addr;
      desc_[avail_pos_].len = d.len;
      desc_[avail_pos_].id = d.id;
      head_flags = d.flags;
    } else {
      desc_[avail_pos_] = d;
    }
    advance(avail_pos_, avail_wrap_, 1);
  }
  // Release (2.8.21): the device must see the whole chain before the head is available.
  set_flags_raw(head_pos, head_flags);
}

void PackedRing::write_chain(std::span<const uint16_t> slots, std::span<const Seg> segs) {
  std::vector<PackedDesc> descs;
  for (size_t i = 0; i < segs.size(); ++i) {
    bool last = i + 1 == segs.size();
    auto flags = static_cast<uint16_t>((segs[i].writable ? kDescFWrite : 0) | (last ? 0 : kDescFNext));
    descs.push_back({segs[i].gpa, segs[i].len, slots.front(), flags});
  }
  publish_raw(descs);
}

void PackedRing::write_indirect(uint16_t id, std::span<const Seg> segs) {
  // An indirect table of packed descriptors, used in order; NEXT and id are not used in it (2.8.19).
  auto* table = reinterpret_cast<PackedDesc*>(indirect(id));
  for (size_t i = 0; i < segs.size(); ++i)
    table[i] = {segs[i].gpa, segs[i].len, 0, static_cast<uint16_t>(segs[i].writable ? kDescFWrite : 0)};
  PackedDesc d{indirect_gpa(id), static_cast<uint32_t>(segs.size() * sizeof(PackedDesc)), id, kDescFIndirect};
  publish_raw(std::span(&d, 1));
}

std::optional<UsedEntry> PackedRing::next_used() {
  if (batch_.empty()) {
    if (!is_used(used_pos_, used_wrap_)) return std::nullopt;
    const PackedDesc& d = desc_[used_pos_];  // the acquire in is_used() orders these reads
    const UsedEntry e{d.id, d.len};
    uint16_t n = chain_len(e.id);
    if (n != 0 && in_order()) {
      // Every buffer posted before e.id is used too; the device skips their positions.
      for (uint16_t id : outstanding()) {
        if (id == e.id) break;
        batch_.push_back({id, 0});
        n = static_cast<uint16_t>(n + chain_len(id));
        ++batched_;
      }
    }
    batch_.push_back(e);
    advance(used_pos_, used_wrap_, n == 0 ? 1 : n);
  }
  UsedEntry e = batch_.front();
  batch_.pop_front();
  return e;
}

void PackedRing::reclaimed() {
  // With EVENT_IDX ask for a notification at the next used descriptor (2.8.10).
  if (event_idx() && !no_interrupt_) write_driver_event(kEventFlagDesc);
}

}  // namespace vusw::it
