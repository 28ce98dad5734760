#include "driver_ring.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace vusw::it {

namespace {

constexpr uint64_t kPage = 4096;
uint64_t page_up(uint64_t v) { return (v + kPage - 1) & ~(kPage - 1); }

// Offsets from the ring base: ring structures | slots | indirect tables.
struct Layout {
  uint64_t slots, indirect, end;
};

Layout layout(uint16_t n, uint64_t ring_bytes) {
  Layout l{};
  l.slots = page_up(ring_bytes);
  l.indirect = l.slots + uint64_t{DriverRing::kSlotSize} * n;
  l.end = page_up(l.indirect + 16ull * DriverRing::kMaxIndirect * n);
  return l;
}

}  // namespace

uint64_t DriverRing::footprint(uint16_t size, uint64_t ring_bytes) { return layout(size, ring_bytes).end; }

DriverRing::DriverRing(const GuestMemory& mem, uint64_t base_gpa, uint16_t size, uint64_t ring_bytes)
    : size_(size), base_gpa_(base_gpa), chains_(size) {
  Layout l = layout(size, ring_bytes);
  base_ = mem.host(base_gpa, l.end);
  if (base_ == nullptr || size == 0) throw std::invalid_argument("ring outside guest memory");
  std::memset(base_, 0, l.end);
  base_uva_ = mem.uva(base_gpa);
  slots_gpa_ = base_gpa + l.slots;
  ind_gpa_ = base_gpa + l.indirect;
  slots_ = base_ + l.slots;
  ind_ = base_ + l.indirect;
  // Hand out low slots first: pop_back takes from the end.
  for (uint32_t i = size; i-- > 0;) free_.push_back(static_cast<uint16_t>(i));
}

std::vector<uint16_t> DriverRing::peek_free(uint16_t n) const {
  std::vector<uint16_t> out;
  for (size_t i = 0; i < n && i < free_.size(); ++i) out.push_back(free_[free_.size() - 1 - i]);
  return out;
}

std::optional<uint16_t> DriverRing::post_chain(std::span<const Seg> segs) {
  if (segs.empty() || segs.size() > free_.size()) return std::nullopt;
  std::vector<uint16_t> chain(free_.rbegin(), free_.rbegin() + static_cast<ptrdiff_t>(segs.size()));
  free_.resize(free_.size() - segs.size());
  uint16_t id = chain.front();
  write_chain(chain, segs);
  chains_[id] = std::move(chain);
  outstanding_.push_back(id);
  return id;
}

std::optional<uint16_t> DriverRing::post_indirect(std::span<const Seg> segs) {
  if (segs.empty() || segs.size() > kMaxIndirect || free_.empty()) return std::nullopt;
  uint16_t id = free_.back();
  free_.pop_back();
  write_indirect(id, segs);
  chains_[id] = {id};
  outstanding_.push_back(id);
  return id;
}

uint16_t DriverRing::chain_len(uint32_t id) const {
  return id < size_ ? static_cast<uint16_t>(chains_[id].size()) : 0;
}

std::vector<UsedEntry> DriverRing::reclaim() {
  std::vector<UsedEntry> out;
  while (std::optional<UsedEntry> e = next_used()) {
    out.push_back(*e);
    account(*e);
  }
  if (!out.empty()) reclaimed();
  return out;
}

void DriverRing::account(const UsedEntry& e) {
  if (chain_len(e.id) == 0) {  // a bogus id from the device; the caller sees it too
    ++bogus_used_;
    return;
  }
  if (outstanding_.front() == e.id) {
    outstanding_.pop_front();
  } else {
    ++out_of_order_;
    outstanding_.erase(std::find(outstanding_.begin(), outstanding_.end(), e.id));
  }
  for (uint16_t s : chains_[e.id]) free_.push_back(s);
  chains_[e.id].clear();
}

}  // namespace vusw::it
