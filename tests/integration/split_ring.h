// The fake guest's split-virtqueue driver (virtio 1.x, 2.7): descriptor table,
// avail ring and used ring placed in fake guest memory, plus one 2 KiB buffer
// slot per descriptor and one indirect table per head right after them.
// Besides the normal driver operations it exposes raw descriptor access so
// tests can play a hostile guest.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <vector>

#include "fake_memory.h"
#include "vhost_wire.h"

namespace vusw::it {

// One buffer of a chain: guest address, length, device-writable or not.
struct Seg {
  uint64_t gpa;
  uint32_t len;
  bool writable;
};

struct UsedEntry {
  uint32_t id;
  uint32_t len;
};

class SplitRing {
 public:
  static constexpr uint32_t kSlotSize = 2048;
  static constexpr uint16_t kMaxIndirect = 8;

  // Bytes of guest memory the ring needs from its base (page aligned).
  static uint64_t footprint(uint16_t size);
  // `base_gpa` must lie in `mem` with footprint(size) bytes; the ring is zeroed.
  SplitRing(const GuestMemory& mem, uint64_t base_gpa, uint16_t size);

  uint16_t size() const { return size_; }
  uint64_t desc_gpa() const { return desc_gpa_; }
  uint64_t avail_gpa() const { return avail_gpa_; }
  uint64_t used_gpa() const { return used_gpa_; }
  // SET_VRING_ADDR payload: ring addresses as front-end userspace addresses.
  VringAddr vring_addr(uint32_t index) const;

  // Normal driver side.
  uint16_t num_free() const { return static_cast<uint16_t>(free_.size()); }
  // Posts segs as a NEXT-chained descriptor list (each segment is one descriptor).
  std::optional<uint16_t> post_chain(std::span<const Seg> segs);
  // Posts one descriptor pointing at an indirect table holding segs.
  std::optional<uint16_t> post_indirect(std::span<const Seg> segs);
  // Descriptors the next post_chain would use, so callers can fill their slots first.
  std::vector<uint16_t> peek_free(uint16_t n) const;
  uint64_t slot_gpa(uint16_t desc) const { return slots_gpa_ + uint64_t{desc} * kSlotSize; }
  std::byte* slot(uint16_t desc) const { return slots_ + size_t{desc} * kSlotSize; }
  // Used entries since the last call; their chains return to the free list.
  std::vector<UsedEntry> reclaim();
  uint16_t used_idx() const;
  uint16_t avail_idx() const { return avail_idx_; }
  uint16_t in_flight() const { return static_cast<uint16_t>(avail_idx_ - last_used_); }
  // Used entries that overtook an older buffer still outstanding (what VIRTIO_F_IN_ORDER
  // forbids; normal otherwise).
  uint64_t out_of_order() const { return out_of_order_; }

  // Raw access for hostile-guest tests: no free-list bookkeeping.
  VringDesc& desc(uint16_t i) { return desc_[i]; }
  // Puts `head` in the avail ring and advances the avail index by one.
  void publish_raw(uint16_t head);
  // Stores any avail index (e.g. far ahead of what was posted).
  void set_avail_idx_raw(uint16_t idx);
  // VRING_AVAIL_F_NO_INTERRUPT: a polling driver needs no used-buffer notifications.
  void set_no_interrupt(bool on);

 private:
  void publish(uint16_t head, std::vector<uint16_t> chain);
  uint64_t indirect_gpa(uint16_t head) const;

  uint16_t size_;
  uint64_t desc_gpa_, avail_gpa_, used_gpa_, slots_gpa_, ind_gpa_;
  VringDesc* desc_;
  std::deque<uint16_t> outstanding_;  // heads posted with publish(), oldest first
  uint64_t out_of_order_ = 0;
  uint16_t* avail_;  // flags, idx, ring[size], used_event
  std::byte* used_;  // flags, idx, ring[size] of VringUsedElem, avail_event
  std::byte* slots_;
  VringDesc* indirect_;
  std::vector<uint16_t> free_;
  std::vector<std::vector<uint16_t>> chains_;  // descriptors owned by each in-flight head
  uint16_t avail_idx_ = 0;
  uint16_t last_used_ = 0;
  uint64_t base_uva_;
  uint64_t base_gpa_;
};

}  // namespace vusw::it
