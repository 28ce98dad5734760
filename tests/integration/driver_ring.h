// What the fake guest's virtqueue drivers have in common, split (split_ring.h)
// or packed (packed_ring.h): one 2 KiB buffer slot per descriptor and one
// indirect table per slot, placed in fake guest memory after the ring itself,
// and the driver's bookkeeping of posted chains. A chain of n buffers takes n
// slots; its first slot is its buffer id (split: the head descriptor index),
// and the device hands that id back in the used ring. The ring formats differ
// only in how a chain is written and how a used entry is read; the traffic
// code works with either through this interface.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <utility>
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

class DriverRing {
 public:
  static constexpr uint32_t kSlotSize = 2048;
  static constexpr uint16_t kMaxIndirect = 8;

  virtual ~DriverRing() = default;
  DriverRing(const DriverRing&) = delete;
  DriverRing& operator=(const DriverRing&) = delete;

  uint16_t size() const { return size_; }
  virtual bool packed() const = 0;
  // SET_VRING_ADDR payload: ring addresses as front-end userspace addresses.
  virtual VringAddr vring_addr(uint32_t index) const = 0;
  // Guest memory the device writes ({gpa, bytes}): the split used ring; the packed
  // descriptor ring and device event area. And where QEMU asks it to log that (split:
  // the used ring; packed: QEMU passes the device event area).
  virtual std::vector<std::pair<uint64_t, uint64_t>> device_written() const = 0;
  virtual uint64_t log_guest_addr() const = 0;
  // SET_VRING_BASE value that restarts the device where it stopped, for a device
  // that has returned every buffer it took (the fake's view of the used ring).
  virtual uint32_t vring_base() const = 0;
  // Asks the device for no used-buffer notifications (a polling driver).
  virtual void set_no_interrupt(bool on) = 0;
  // Whether the device asked to be kicked for the buffers made available since the
  // last call (split: used->flags NO_NOTIFY, or avail_event with EVENT_IDX, 2.7.10;
  // packed: the device event suppression area, 2.8.10), as Linux's
  // virtqueue_kick_prepare decides. Full barrier first: the avail index or flags
  // must be visible before the device's suppression is read.
  virtual bool kick_needed() = 0;
  // The device wrote a used entry the driver has not consumed yet.
  virtual bool used_pending() const = 0;
  // VIRTIO_RING_F_EVENT_IDX negotiated: after each reclaim the driver asks to be
  // notified at the next used entry (split: used_event; packed: descriptor event).
  void set_event_idx(bool on) { event_idx_ = on; }
  // VIRTIO_F_IN_ORDER negotiated (packed rings: the device may return a batch with one
  // used descriptor, 2.8.20).
  void set_in_order(bool on) { in_order_ = on; }

  // ---- normal driver side ----
  uint16_t num_free() const { return static_cast<uint16_t>(free_.size()); }
  // Posts segs as a chain (each segment one descriptor); returns its buffer id.
  std::optional<uint16_t> post_chain(std::span<const Seg> segs);
  // Posts one descriptor pointing at an indirect table holding segs.
  std::optional<uint16_t> post_indirect(std::span<const Seg> segs);
  // Slots the next post_chain would use, so callers can fill them first.
  std::vector<uint16_t> peek_free(uint16_t n) const;
  uint64_t slot_gpa(uint16_t s) const { return slots_gpa_ + uint64_t{s} * kSlotSize; }
  std::byte* slot(uint16_t s) const { return slots_ + size_t{s} * kSlotSize; }
  // Used entries since the last call; their slots return to the free list.
  std::vector<UsedEntry> reclaim();
  // Chains posted and not yet returned.
  uint16_t in_flight() const { return static_cast<uint16_t>(outstanding_.size()); }
  // Used entries that overtook an older buffer still outstanding (what VIRTIO_F_IN_ORDER
  // forbids; normal otherwise).
  uint64_t out_of_order() const { return out_of_order_; }
  // Used entries naming a buffer id that was not outstanding (a device bug).
  uint64_t bogus_used() const { return bogus_used_; }

 protected:
  // `ring_bytes` of ring structures at base_gpa, then the slots and indirect tables.
  DriverRing(const GuestMemory& mem, uint64_t base_gpa, uint16_t size, uint64_t ring_bytes);
  static uint64_t footprint(uint16_t size, uint64_t ring_bytes);

  // Writes the descriptors of chain `id` (slots[0] == id) and makes it available.
  virtual void write_chain(std::span<const uint16_t> slots, std::span<const Seg> segs) = 0;
  // Writes `segs` into the indirect table of `id` and makes one descriptor pointing at it available.
  virtual void write_indirect(uint16_t id, std::span<const Seg> segs) = 0;
  // The next used entry the device wrote, consumed; nullopt if there is none.
  virtual std::optional<UsedEntry> next_used() = 0;
  // Called after reclaim() consumed entries (EVENT_IDX bookkeeping).
  virtual void reclaimed() {}

  // Descriptors chain `id` took (0 if `id` is not outstanding).
  uint16_t chain_len(uint32_t id) const;
  uint64_t indirect_gpa(uint16_t id) const { return ind_gpa_ + uint64_t{id} * kMaxIndirect * 16; }
  std::byte* indirect(uint16_t id) const { return ind_ + size_t{id} * kMaxIndirect * 16; }
  uint64_t uva(uint64_t gpa) const { return base_uva_ + (gpa - base_gpa_); }
  bool event_idx() const { return event_idx_; }
  bool in_order() const { return in_order_; }
  const std::deque<uint16_t>& outstanding() const { return outstanding_; }
  std::byte* base() const { return base_; }
  uint64_t base_gpa() const { return base_gpa_; }

 private:
  void account(const UsedEntry& e);

  uint16_t size_;
  uint64_t base_gpa_, base_uva_;
  std::byte* base_;
  uint64_t slots_gpa_, ind_gpa_;
  std::byte* slots_;
  std::byte* ind_;
  bool event_idx_ = false;
  bool in_order_ = false;
  std::vector<uint16_t> free_;
  std::vector<std::vector<uint16_t>> chains_;  // slots owned by each in-flight id
  std::deque<uint16_t> outstanding_;           // ids posted, oldest first
  uint64_t out_of_order_ = 0;
  uint64_t bogus_used_ = 0;
};

}  // namespace vusw::it
