// The CUDA backend's kernels, behind plain host functions that launch them on
// a stream (cuda_kernels.cu, compiled by nvcc; the backend itself is plain
// C++). Layouts are the CPU backend's: activations [tokens][n] floats, weight
// matrices [rows][cols] in their file type (Q8_0 repacked: quants apart from
// half scales), KV blocks [block][layer][16][kv_heads * head_dim] floats.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace sluice::cuda::k {

enum WeightType : int { kF32 = 0, kF16 = 1, kQ8_0 = 8, kBF16 = 30 };

struct DeviceWeight {
  int type = kF32;
  const void* data = nullptr;        // rows x cols values (Q8_0: int8 quants)
  const uint16_t* scales = nullptr;  // Q8_0: rows x cols / 32 halves
  int rows = 0, cols = 0;
};

// Where a step's per-token and per-row values are (device pointers into the
// step buffer; the kernels read them there, so a graph replays any step).
struct StepRefs {
  const int32_t* token = nullptr;
  const int32_t* pos = nullptr;
  const int32_t* seq_of = nullptr;
  const int32_t* table = nullptr;  // per sequence, max_blocks ids
  int max_blocks = 0;
  const int32_t* row_token = nullptr;
  const int32_t* row_k = nullptr;
  const float* row_penalty = nullptr;
  const int32_t* row_recent_off = nullptr;
  const int32_t* row_recent_len = nullptr;
  const int32_t* recent = nullptr;
};

struct AttentionShape {
  int layer = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int split = 256;  // positions per part of a sequence
  int splits = 1;   // parts (ceil(context / split))
  float scale = 1.f;
};

// x[t] = row token[t] of the embedding, as floats.
void embed(const DeviceWeight& w, const int32_t* token, int tokens, float* x, cudaStream_t s);
// out[r] = x[gather ? gather[r] : r] * rsqrt(mean(x^2) + eps) * w (the sum in double, as the CPU).
void rms_norm(const float* x, const float* w, float* out, int rows, int n, float eps, const int32_t* gather,
              cudaStream_t s);
// y[t][r] (+)= dot(row r, x[t]) for t < tokens: one warp per 4 rows, lanes
// over columns 8 at a time, a fixed reduction order, so a token's result
// does not depend on the others (the decode path, batch-invariant).
void matvec(const DeviceWeight& w, const float* x, float* y, int tokens, bool accumulate, cudaStream_t s);
// The whole matrix as floats, or bfloat16 (round to nearest even), rows x cols.
void dequantize(const DeviceWeight& w, void* out, bool bf16, cudaStream_t s);
// Floats to IEEE halves or bfloat16 (round to nearest even), for cuBLAS.
void to_16bit(const float* x, void* out, size_t n, bool bf16, cudaStream_t s);
// Q, K, V biases (null: none), rotary embeddings on q (in place) and k, and
// k, v appended to each token's sequence's KV blocks at its position.
void rope_append(float* q, const float* k, const float* v, const float* bq, const float* bk, const float* bv,
                 int tokens, const StepRefs& step, float* kv_k, float* kv_v, const AttentionShape& a, float base,
                 bool halves, cudaStream_t s);
// Causal attention of every token over its sequence's cache, split over the
// sequence in parts then combined (flash-decoding); out [tokens][heads * head_dim].
void attention(const float* q, int tokens, const StepRefs& step, const float* kv_k, const float* kv_v,
               const AttentionShape& a, float* part_o, float* part_ml, float* out, cudaStream_t s);
// gate = silu(gate) * up.
void silu_mul(float* gate, const float* up, size_t n, cudaStream_t s);
// The repetition penalty of each row over its recent ids, in order.
void penalize(float* logits, int rows, int vocab, const StepRefs& step, cudaStream_t s);
// Each row's row_k[r] largest logits that are not banned (ties: the lowest
// ids), as (value, id) pairs in any order; counts[r] how many.
void top_k(const float* logits, int rows, int vocab, const uint8_t* banned, const int32_t* row_k, float* values,
           int32_t* ids, int32_t* counts, int max_candidates, cudaStream_t s);

}  // namespace sluice::cuda::k
