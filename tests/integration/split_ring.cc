#include "split_ring.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>

namespace vusw::it {

namespace {

constexpr uint64_t kPage = 4096;

uint64_t page_up(uint64_t v) { return (v + kPage - 1) & ~(kPage - 1); }

// Offsets from the ring base: desc | avail | used | slots | indirect tables.
struct Layout {
  uint64_t avail, used, slots, indirect, end;
};

Layout layout(uint16_t n) {
  Layout l{};
  l.avail = page_up(16ull * n);
  l.used = l.avail + page_up(6 + 2ull * n);
  l.slots = l.used + page_up(6 + 8ull * n);
  l.indirect = l.slots + uint64_t{SplitRing::kSlotSize} * n;
  l.end = page_up(l.indirect + 16ull * SplitRing::kMaxIndirect * n);
  return l;
}

}  // namespace

uint64_t SplitRing::footprint(uint16_t size) { return layout(size).end; }

SplitRing::SplitRing(const GuestMemory& mem, uint64_t base_gpa, uint16_t size)
    : size_(size), chains_(size), base_gpa_(base_gpa) {
  Layout l = layout(size);
  std::byte* base = mem.host(base_gpa, l.end);
  if (base == nullptr || size == 0) throw std::invalid_argument("ring outside guest memory");
  std::memset(base, 0, l.end);
  base_uva_ = mem.uva(base_gpa);
  desc_gpa_ = base_gpa;
  avail_gpa_ = base_gpa + l.avail;
  used_gpa_ = base_gpa + l.used;
  slots_gpa_ = base_gpa + l.slots;
  ind_gpa_ = base_gpa + l.indirect;
  desc_ = reinterpret_cast<VringDesc*>(base);
  avail_ = reinterpret_cast<uint16_t*>(base + l.avail);
  used_ = base + l.used;
  slots_ = base + l.slots;
  indirect_ = reinterpret_cast<VringDesc*>(base + l.indirect);
  // Hand out low descriptors first: pop_back takes from the end.
  for (uint32_t i = size; i-- > 0;) free_.push_back(static_cast<uint16_t>(i));
}

VringAddr SplitRing::vring_addr(uint32_t index) const {
  auto uva = [this](uint64_t gpa) { return base_uva_ + (gpa - base_gpa_); };
  return {index, 0, uva(desc_gpa_), uva(used_gpa_), uva(avail_gpa_), 0};
}

std::vector<uint16_t> SplitRing::peek_free(uint16_t n) const {
  std::vector<uint16_t> out;
  for (size_t i = 0; i < n && i < free_.size(); ++i) out.push_back(free_[free_.size() - 1 - i]);
  return out;
}

std::optional<uint16_t> SplitRing::post_chain(std::span<const Seg> segs) {
  if (segs.empty() || segs.size() > free_.size()) return std::nullopt;
  std::vector<uint16_t> chain;
  for (size_t i = 0; i < segs.size(); ++i) {
    chain.push_back(free_.back());
    free_.pop_back();
  }
  for (size_t i = 0; i < segs.size(); ++i) {
    bool last = i + 1 == segs.size();
    uint16_t flags = static_cast<uint16_t>((segs[i].writable ? kDescFWrite : 0) |
                                           (last ? 0 : kDescFNext));
    desc_[chain[i]] = {segs[i].gpa, segs[i].len, flags, last ? uint16_t{0} : chain[i + 1]};
  }
  uint16_t head = chain.front();
  publish(head, std::move(chain));
  return head;
}

uint64_t SplitRing::indirect_gpa(uint16_t head) const {
  return ind_gpa_ + uint64_t{head} * kMaxIndirect * sizeof(VringDesc);
}

std::optional<uint16_t> SplitRing::post_indirect(std::span<const Seg> segs) {
  if (segs.empty() || segs.size() > kMaxIndirect || free_.empty()) return std::nullopt;
  uint16_t head = free_.back();
  free_.pop_back();
  VringDesc* table = indirect_ + size_t{head} * kMaxIndirect;
  for (size_t i = 0; i < segs.size(); ++i) {
    bool last = i + 1 == segs.size();
    uint16_t flags = static_cast<uint16_t>((segs[i].writable ? kDescFWrite : 0) |
                                           (last ? 0 : kDescFNext));
    table[i] = {segs[i].gpa, segs[i].len, flags, static_cast<uint16_t>(last ? 0 : i + 1)};
  }
  auto table_len = static_cast<uint32_t>(segs.size() * sizeof(VringDesc));
  desc_[head] = {indirect_gpa(head), table_len, kDescFIndirect, 0};
  publish(head, {head});
  return head;
}

void SplitRing::publish(uint16_t head, std::vector<uint16_t> chain) {
  chains_[head] = std::move(chain);
  outstanding_.push_back(head);
  publish_raw(head);
}

void SplitRing::publish_raw(uint16_t head) {
  avail_[2 + avail_idx_ % size_] = head;
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

uint16_t SplitRing::used_idx() const {
  return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(used_ + 2))
      .load(std::memory_order_acquire);
}

std::vector<UsedEntry> SplitRing::reclaim() {
  std::vector<UsedEntry> out;
  uint16_t idx = used_idx();
  for (; last_used_ != idx; ++last_used_) {
    VringUsedElem e;
    std::memcpy(&e, used_ + 4 + 8 * size_t{static_cast<uint16_t>(last_used_ % size_)}, sizeof(e));
    out.push_back({e.id, e.len});
    if (e.id >= size_) continue;  // A bogus id from the device; the caller sees it.
    if (!outstanding_.empty() && outstanding_.front() == e.id) {
      outstanding_.pop_front();
    } else if (auto it = std::find(outstanding_.begin(), outstanding_.end(), e.id); it != outstanding_.end()) {
      ++out_of_order_;
      outstanding_.erase(it);
    }
    for (uint16_t d : chains_[e.id]) free_.push_back(d);
    chains_[e.id].clear();
  }
  return out;
}

}  // namespace vusw::it
