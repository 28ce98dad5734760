// The fake guest's packed-virtqueue driver (virtio 1.2, 2.8): one descriptor
// ring plus the driver and device event suppression areas in fake guest
// memory, ahead of the slots of DriverRing. Any ring size up to 32768 works,
// not only powers of two.
//
// The driver's rules it follows (2.8.1, 2.8.13, 2.8.21): its avail wrap counter
// starts at 1 and flips each time the avail position wraps; a descriptor is
// available when its AVAIL flag equals that counter and its USED flag does
// not; the buffer id is in the last descriptor of a chain (this driver writes
// it in every one, as Linux does); the head's flags are written last, with
// release, so the device never sees part of a chain. The device writes a used
// descriptor (AVAIL == USED == its used wrap counter) at its used position and
// skips as many positions as the chain took; the driver reads them in order.
// With IN_ORDER the device may write one used descriptor for a batch (2.8.20):
// the buffers before it count as used (length 0), and the driver skips the
// positions of all of them.
//
// Besides the normal driver operations it exposes raw access so tests can play
// a hostile guest: any descriptor, any flags, the cursor and wrap counter.
#pragma once

#include <cstdint>
#include <deque>

#include "driver_ring.h"

namespace vusw::it {

class PackedRing final : public DriverRing {
 public:
  // Bytes of guest memory the ring needs from its base (page aligned).
  static uint64_t footprint(uint16_t size);
  // `base_gpa` must lie in `mem` with footprint(size) bytes; the ring is zeroed.
  PackedRing(const GuestMemory& mem, uint64_t base_gpa, uint16_t size);

  bool packed() const override { return true; }
  uint64_t desc_gpa() const { return base_gpa(); }
  uint64_t driver_event_gpa() const { return driver_event_gpa_; }
  uint64_t device_event_gpa() const { return device_event_gpa_; }
  // desc = descriptor ring, avail = driver event area, used = device event area.
  VringAddr vring_addr(uint32_t index) const override;
  std::vector<std::pair<uint64_t, uint64_t>> device_written() const override {
    return {{desc_gpa(), 16 * uint64_t{size()}}, {device_event_gpa_, 4}};
  }
  uint64_t log_guest_addr() const override { return device_event_gpa_; }
  // The device's next position and wrap counter as the used descriptors tell it
  // (index | wrap << 15), in bits 0-15 for avail and again in 16-31 for used,
  // as QEMU sends it.
  uint32_t vring_base() const override;
  // Driver event flags DISABLE (2.8.10).
  void set_no_interrupt(bool on) override;
  bool kick_needed() override;
  bool used_pending() const override { return !batch_.empty() || is_used(used_pos_, used_wrap_); }

  // Buffers returned as part of an IN_ORDER batch without a used descriptor of their own.
  uint64_t batched() const { return batched_; }

  // Driver cursors: where the next chain goes, where the next used descriptor is expected.
  uint16_t avail_pos() const { return avail_pos_; }
  bool avail_wrap() const { return avail_wrap_; }
  uint16_t used_pos() const { return used_pos_; }
  bool used_wrap() const { return used_wrap_; }
  // The AVAIL/USED bits that make a descriptor available in the lap with wrap counter `wrap`.
  static uint16_t avail_bits(bool wrap) { return wrap ? kDescFAvail : kDescFUsed; }
  PackedEvent driver_event() const;
  PackedEvent device_event() const;

  // ---- raw access for hostile-guest tests: no slot bookkeeping ----
  PackedDesc& desc(uint16_t pos) { return desc_[pos]; }
  // Stores one descriptor's flags with release.
  void set_flags_raw(uint16_t pos, uint16_t flags);
  // Writes `descs` at the avail cursor, one position each (wrapping), the head's
  // flags last, and advances the cursor past them. With `wrap_bits` each flags
  // word gets the AVAIL/USED bits of the lap its position is in (replacing any
  // given); without, the flags are stored exactly as given.
  void publish_raw(std::span<const PackedDesc> descs, bool wrap_bits = true);
  // Moves the avail cursor (e.g. to leave a gap).
  void set_avail_cursor(uint16_t pos, bool wrap);

 private:
  void write_chain(std::span<const uint16_t> slots, std::span<const Seg> segs) override;
  void write_indirect(uint16_t id, std::span<const Seg> segs) override;
  std::optional<UsedEntry> next_used() override;
  void reclaimed() override;
  // Whether the descriptor at `pos` is a used one in the lap with wrap counter `wrap`.
  bool is_used(uint16_t pos, bool wrap) const;
  void advance(uint16_t& pos, bool& wrap, uint16_t n) const;
  void write_driver_event(uint16_t flags);

  uint64_t driver_event_gpa_, device_event_gpa_;
  PackedDesc* desc_;
  PackedEvent* driver_event_;
  PackedEvent* device_event_;
  uint16_t avail_pos_ = 0;
  bool avail_wrap_ = true;
  uint16_t used_pos_ = 0;
  bool used_wrap_ = true;
  bool no_interrupt_ = false;
  uint16_t kicked_pos_ = 0;  // avail cursor at the last kick_needed()
  bool kicked_wrap_ = true;
  std::deque<UsedEntry> batch_;  // entries of an IN_ORDER batch not handed out yet
  uint64_t batched_ = 0;
};

}  // namespace vusw::it
