// A stand-in for the engine in scheduler tests: it "computes" a step by writing each token
// (and its position) into a simulated KV store through the block tables, and samples the
// next token as a hash of the whole sequence read back from that store. A wrong block table,
// a block shared by mistake or overwritten while cached therefore changes the generated
// stream, which the tests compare with reference_stream() (the same request run alone).
// It is also the KvBlockIo of the lower tiers: a block's bytes are its slots' tokens and
// positions, so a block demoted and promoted to the wrong place, or garbled on the way,
// shows up the same way.
// Thread safety: test thread only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "supernode/scheduler/kv_tiers.h"
#include "supernode/scheduler/scheduler.h"

#include <CppUTest/TestHarness.h>

namespace sn::scheduler::testing {

constexpr int32_t kVocab = 997;

inline int32_t next_token(const std::vector<int32_t>& seq) {
  uint64_t h = 1469598103934665603ull;
  for (int32_t t : seq) h = (h ^ static_cast<uint32_t>(t)) * 1099511628211ull;
  return static_cast<int32_t>((h >> 17) % kVocab);
}

// The tokens `prompt` generates alone, up to max_tokens or a stop token (included).
inline std::vector<int32_t> reference_stream(std::vector<int32_t> seq, int32_t max_tokens,
                                             const std::vector<int32_t>& stop_ids = {}) {
  std::vector<int32_t> out;
  while (static_cast<int32_t>(out.size()) < max_tokens) {
    int32_t t = next_token(seq);
    out.push_back(t);
    seq.push_back(t);
    if (std::find(stop_ids.begin(), stop_ids.end(), t) != stop_ids.end()) break;
  }
  return out;
}

class FakeEngine final : public KvBlockIo {
 public:
  FakeEngine(int32_t num_blocks, int32_t block_size)
      : block_size_(block_size), token_(static_cast<size_t>(num_blocks * block_size), -1),
        pos_(static_cast<size_t>(num_blocks * block_size), -1) {}

  // Every token the step computes is written; every position before it must read back as
  // written. Fails the test on a mismatch.
  StepResult run(const SchedulerOutput& out) {
    StepResult r;
    for (const ScheduledSequence& s : out.sequences) {
      for (size_t i = 0; i < s.tokens.size(); ++i) {
        size_t slot = this->slot(s, s.start_position + static_cast<int32_t>(i));
        token_[slot] = s.tokens[i];
        pos_[slot] = s.start_position + static_cast<int32_t>(i);
      }
      if (!s.want_token) {
        r.sequences.push_back({s.id, std::nullopt, false});
        continue;
      }
      std::vector<int32_t> seq;
      int32_t end = s.start_position + static_cast<int32_t>(s.tokens.size());
      for (int32_t p = 0; p < end; ++p) {
        size_t slot = this->slot(s, p);
        LONGS_EQUAL_TEXT(p, pos_[slot], ("request " + std::to_string(s.id) + ": KV slot holds another position").c_str());
        seq.push_back(token_[slot]);
      }
      r.sequences.push_back({s.id, next_token(seq), false});
    }
    return r;
  }

  // KvBlockIo: block_size tokens then block_size positions, int32 each.
  [[nodiscard]] size_t block_bytes() const override { return static_cast<size_t>(block_size_) * 8; }
  [[nodiscard]] int32_t head_dim() const override { return 2; }
  void read_block(int32_t block, std::span<std::byte> out) const override {
    const size_t first = static_cast<size_t>(block) * static_cast<size_t>(block_size_), n = static_cast<size_t>(block_size_) * 4;
    std::memcpy(out.data(), token_.data() + first, n);
    std::memcpy(out.data() + n, pos_.data() + first, n);
  }
  void write_block(int32_t block, std::span<const std::byte> in) override {
    const size_t first = static_cast<size_t>(block) * static_cast<size_t>(block_size_), n = static_cast<size_t>(block_size_) * 4;
    std::memcpy(token_.data() + first, in.data(), n);
    std::memcpy(pos_.data() + first, in.data() + n, n);
    ++blocks_written_;
  }
  [[nodiscard]] int64_t blocks_written() const { return blocks_written_; }

 private:
  size_t slot(const ScheduledSequence& s, int32_t p) const {
    size_t b = static_cast<size_t>(p / block_size_);
    CHECK_TEXT(b < s.block_table.size(), "position without a block");
    return static_cast<size_t>(s.block_table[b]) * static_cast<size_t>(block_size_) + static_cast<size_t>(p % block_size_);
  }

  int32_t block_size_;
  std::vector<int32_t> token_;
  std::vector<int32_t> pos_;
  int64_t blocks_written_ = 0;
};

}  // namespace sn::scheduler::testing
