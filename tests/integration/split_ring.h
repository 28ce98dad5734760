// The fake guest's split-virtqueue driver (virtio 1.x, 2.7): descriptor table,
// avail ring and used ring placed in fake guest memory ahead of the slots of
// DriverRing. A slot and the descriptor of the same index go together. Besides
// the normal driver operations it exposes raw descriptor access so tests can
// play a hostile guest.
#pragma once

#include <cstdint>

#include "driver_ring.h"

namespace vusw::it {

class SplitRing final : public DriverRing {
 public:
  // Bytes of guest memory the ring needs from its base (page aligned).
  static uint64_t footprint(uint16_t size);
  // `base_gpa` must lie in `mem` with footprint(size) bytes; the ring is zeroed.
  // `size` must be a power of two (2.7).
  SplitRing(const GuestMemory& mem, uint64_t base_gpa, uint16_t size);

  bool packed() const override { return false; }
  uint64_t desc_gpa() const { return base_gpa(); }
  uint64_t avail_gpa() const { return avail_gpa_; }
  uint64_t used_gpa() const { return used_gpa_; }
  VringAddr vring_addr(uint32_t index) const override;
  std::vector<std::pair<uint64_t, uint64_t>> device_written() const override {
    return {{used_gpa_, 4 + 8 * uint64_t{size()} + 2}};
  }
  uint64_t log_guest_addr() const override { return used_gpa_; }
  // The used index: an in-order device has consumed exactly what it returned.
  uint32_t vring_base() const override { return used_idx(); }
  // VRING_AVAIL_F_NO_INTERRUPT.
  void set_no_interrupt(bool on) override;
  bool kick_needed() override;
  bool used_pending() const override { return last_used_ != used_idx(); }

  uint16_t used_idx() const;
  uint16_t avail_idx() const { return avail_idx_; }

  // Raw access for hostile-guest tests: no free-list bookkeeping.
  VringDesc& desc(uint16_t i) { return desc_[i]; }
  // Puts `head` in the avail ring and advances the avail index by one.
  void publish_raw(uint16_t head);
  // Stores any avail index (e.g. far ahead of what was posted).
  void set_avail_idx_raw(uint16_t idx);

 private:
  void write_chain(std::span<const uint16_t> slots, std::span<const Seg> segs) override;
  void write_indirect(uint16_t id, std::span<const Seg> segs) override;
  std::optional<UsedEntry> next_used() override;
  void reclaimed() override;

  uint64_t avail_gpa_, used_gpa_;
  VringDesc* desc_;
  uint16_t* avail_;  // flags, idx, ring[size], used_event
  std::byte* used_;  // flags, idx, ring[size] of VringUsedElem, avail_event
  uint16_t avail_idx_ = 0;
  uint16_t last_used_ = 0;
  uint16_t kicked_avail_ = 0;  // avail index at the last kick_needed()
};

}  // namespace vusw::it
