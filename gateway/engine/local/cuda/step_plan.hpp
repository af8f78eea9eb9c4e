// The CUDA backend's host side, which needs no GPU (and is tested without
// one): how a step is laid out for the device, which CUDA-graph bucket a
// decode step replays, how Q8_0 weights are repacked for aligned loads, and
// where every weight lands in device memory.
//
// A step goes to the device as one buffer of fixed capacity (StepLayout): the
// kernels, and the CUDA graphs captured over them, read every per-step value
// (token ids, positions, block tables, the rows to sample and how) from fixed
// addresses, so one graph per bucket serves every decode step of that size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "gateway/engine/local/backend.hpp"
#include "gateway/engine/local/kernels.hpp"

namespace sluice::cuda {

// Candidates a sampled row hands back at most (its top_k, or this many when
// top_k is 0 or larger): the host finishes top-p and the draw on them.
inline constexpr int kMaxCandidates = 256;
// Positions one attention block covers (attention is split over the
// sequence in parts of this many, then combined).
inline constexpr int kAttentionSplit = 256;

// Decode steps of n sequences replay the graph of the smallest bucket that
// holds them: 1, 2, 4, 8, ... up to max_batch (max_batch itself the last).
int decode_bucket(int n, int max_batch);
std::vector<int> decode_buckets(int max_batch);

struct StepLayout {
  StepLayout(int max_tokens, int max_seqs, int max_blocks, int max_recent);
  int max_tokens, max_seqs, max_blocks, max_recent;
  // int32 offsets into the buffer, each array 16-int aligned.
  size_t header, token, pos, seq_of, table, row_token, row_k, row_penalty, row_recent_off, row_recent_len,
      recent, ints;
  size_t bytes() const { return ints * sizeof(int32_t); }
  // Header fields: [0] tokens, [1] decode tokens (the first ones), [2] rows, [3] graph bucket (0: none)
};

// A step on the host, ready to copy: its tokens and rows, padded to a decode
// bucket when `bucket` > 0 (the padding tokens decode token 0 at position 0
// into `scratch_block`, and their rows are sampled greedily, then dropped).
struct StepImage {
  std::vector<int32_t> ints;  // layout.ints values
  int tokens = 0, decode = 0, rows = 0, bucket = 0;
  std::vector<int> row_seq;   // rows: the StepSeq each row samples for (-1: padding)
};

// False (with `error`) when the step does not fit the layout.
bool build_step(std::span<const StepSeq> seqs, const StepLayout& layout, int bucket, int32_t scratch_block,
                StepImage& out, std::string& error);

// The K a sampled row asks the device for: 1 when greedy (the largest logit,
// the lowest id among equals), else top_k capped at kMaxCandidates.
int candidates_for(const SamplingParams& p);

// Q8_0 repacked for the device: each row's 8-bit quants in one run (aligned
// 16-byte loads) and its block scales apart, as IEEE halves.
struct RepackedQ8 {
  std::vector<int8_t> quants;    // rows x cols
  std::vector<uint16_t> scales;  // rows x cols / 32
};
RepackedQ8 repack_q8_0(const kernels::Weight& w);

// Where each weight lands in one device allocation: 256-byte aligned,
// nothing overlapping.
struct Placement {
  std::string name;
  gguf::TensorType type;
  size_t offset = 0, bytes = 0;        // the values (Q8_0: the quants)
  size_t scale_offset = 0, scale_bytes = 0;  // Q8_0's scales
};
struct WeightPlan {
  std::vector<Placement> items;
  size_t total = 0;
  void add(std::string name, const kernels::Weight& w);
  void add_floats(std::string name, size_t count);  // norms and biases, as floats
};
WeightPlan plan_weights(const Model& model);

// Device memory for the KV pool of `blocks` blocks (one more, the padding's
// scratch block, is added by the backend).
size_t kv_bytes(const ModelConfig& c, int64_t blocks);

}  // namespace sluice::cuda
