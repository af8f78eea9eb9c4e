#include "gateway/engine/local/cuda/cuda_kernels.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cfloat>

namespace sluice::cuda::k {

namespace {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kRowsPerWarp = 4;
constexpr int kTokenTile = 8;
constexpr int kBlockTokens = 16;  // positions per KV block (kKvBlockTokens)

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFull, v, off);
  return v;
}

__device__ __forceinline__ float bf16_bits(uint32_t bits16) { return __uint_as_float(bits16 << 16); }

// Eight consecutive values of a row, from column c (c % 8 == 0), as floats.
template <int T>
__device__ __forceinline__ void load8(const DeviceWeight& w, int row, int c, float out[8]) {
  const size_t at = static_cast<size_t>(row) * static_cast<size_t>(w.cols) + static_cast<size_t>(c);
  if constexpr (T == kF32) {
    const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(w.data) + at);
    const float4 a = __ldg(p), b = __ldg(p + 1);
    out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w;
    out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
  } else if constexpr (T == kF16) {
    const uint4 u = __ldg(reinterpret_cast<const uint4*>(static_cast<const __half*>(w.data) + at));
    const uint32_t words[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&words[i]));
      out[2 * i] = f.x;
      out[2 * i + 1] = f.y;
    }
  } else if constexpr (T == kBF16) {
    const uint4 u = __ldg(reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(w.data) + at));
    const uint32_t words[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      out[2 * i] = bf16_bits(words[i] & 0xffffu);
      out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
  } else {  // Q8_0, repacked
    const int2 q = __ldg(reinterpret_cast<const int2*>(static_cast<const int8_t*>(w.data) + at));
    const uint16_t bits = __ldg(w.scales + (at >> 5));
    const float d = __half2float(__ushort_as_half(bits));
    const uint32_t words[2] = {static_cast<uint32_t>(q.x), static_cast<uint32_t>(q.y)};
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int8_t v = static_cast<int8_t>((words[i / 4] >> (8 * (i % 4))) & 0xffu);
      out[i] = static_cast<float>(v) * d;
    }
  }
}

template <int T>
__global__ void embed_kernel(DeviceWeight w, const int32_t* __restrict__ token, float* __restrict__ x) {
  const int t = blockIdx.x;
  const int row = token[t];
  for (int c = threadIdx.x * 8; c < w.cols; c += blockDim.x * 8) {
    float v[8];
    load8<T>(w, row, c, v);
#pragma unroll
    for (int i = 0; i < 8; ++i) x[static_cast<size_t>(t) * w.cols + c + i] = v[i];
  }
}

__global__ void rms_norm_kernel(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ out, int n,
                                float eps, const int32_t* __restrict__ gather) {
  const int row = blockIdx.x;
  const int src = gather ? gather[row] : row;
  const float* xr = x + static_cast<size_t>(src) * n;
  double ss = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) ss += static_cast<double>(xr[i]) * xr[i];
  __shared__ double part[32];
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(kFull, ss, off);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0;
    for (int i = 0; i < static_cast<int>(blockDim.x >> 5); ++i) total += part[i];
    part[0] = total;
  }
  __syncthreads();
  const float scale = 1.0f / sqrtf(static_cast<float>(part[0] / static_cast<double>(n)) + eps);
  for (int i = threadIdx.x; i < n; i += blockDim.x) out[static_cast<size_t>(row) * n + i] = xr[i] * scale * w[i];
}

template <int T>
__global__ void matvec_kernel(DeviceWeight w, const float* __restrict__ x, float* __restrict__ y, int tokens,
                              int accumulate) {
  const int lane = threadIdx.x & 31;
  const int warp = static_cast<int>((blockIdx.x * blockDim.x + threadIdx.x) >> 5);
  const int r0 = warp * kRowsPerWarp;
  if (r0 >= w.rows) return;  // the whole warp
  const int cols = w.cols;
  for (int t0 = 0; t0 < tokens; t0 += kTokenTile) {
    const int nt = min(kTokenTile, tokens - t0);
    float acc[kRowsPerWarp][kTokenTile];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
#pragma unroll
      for (int t = 0; t < kTokenTile; ++t) acc[r][t] = 0.f;
    }
    for (int c = lane * 8; c < cols; c += 32 * 8) {
      float wv[kRowsPerWarp][8];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        if (r0 + r < w.rows) {
          load8<T>(w, r0 + r, c, wv[r]);
        } else {
#pragma unroll
          for (int i = 0; i < 8; ++i) wv[r][i] = 0.f;
        }
      }
#pragma unroll
      for (int t = 0; t < kTokenTile; ++t) {
        if (t < nt) {
          const float4* xp = reinterpret_cast<const float4*>(x + static_cast<size_t>(t0 + t) * cols + c);
          const float4 a = xp[0], b = xp[1];
          const float xv[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
          for (int r = 0; r < kRowsPerWarp; ++r) {
#pragma unroll
            for (int i = 0; i < 8; ++i) acc[r][t] = fmaf(wv[r][i], xv[i], acc[r][t]);
          }
        }
      }
    }
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
#pragma unroll
      for (int t = 0; t < kTokenTile; ++t) {
        const float v = warp_sum(acc[r][t]);
        if (lane == 0 && t < nt && r0 + r < w.rows) {
          float& out = y[static_cast<size_t>(t0 + t) * w.rows + r0 + r];
          out = accumulate ? out + v : v;
        }
      }
    }
  }
}

template <int T>
__global__ void dequantize_kernel(DeviceWeight w, void* out, int bf16) {
  const size_t n = static_cast<size_t>(w.rows) * w.cols;
  for (size_t i = (blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x) * 8; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x * 8) {
    const int row = static_cast<int>(i / w.cols), c = static_cast<int>(i % w.cols);
    float v[8];
    load8<T>(w, row, c, v);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      if (bf16) {
        static_cast<__nv_bfloat16*>(out)[i + j] = __float2bfloat16_rn(v[j]);
      } else {
        static_cast<float*>(out)[i + j] = v[j];
      }
    }
  }
}

__global__ void to_16bit_kernel(const float* __restrict__ x, void* out, size_t n, int bf16) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    if (bf16) {
      static_cast<__nv_bfloat16*>(out)[i] = __float2bfloat16_rn(x[i]);
    } else {
      static_cast<__half*>(out)[i] = __float2half_rn(x[i]);
    }
  }
}

__device__ __forceinline__ size_t kv_at(const StepRefs& st, const AttentionShape& a, int t, int p) {
  const int block = st.table[st.seq_of[t] * st.max_blocks + p / kBlockTokens];
  const size_t row = static_cast<size_t>(a.kv_heads) * a.head_dim;
  return ((static_cast<size_t>(block) * a.layers + a.layer) * kBlockTokens + p % kBlockTokens) * row;
}

// The pair (i, i + half) or (2i, 2i + 1) of one head, biased, then rotated.
__device__ __forceinline__ void rotate(const float* x, const float* bias, int i, int hd, int pos, float base,
                                       bool halves, float& a_out, float& b_out, int& ia, int& ib) {
  const int half = hd / 2;
  ia = halves ? i : 2 * i;
  ib = halves ? i + half : 2 * i + 1;
  const float a0 = x[ia] + (bias ? bias[ia] : 0.f);
  const float b0 = x[ib] + (bias ? bias[ib] : 0.f);
  const float theta = static_cast<float>(pos) * powf(base, -2.0f * static_cast<float>(i) / static_cast<float>(hd));
  const float c = cosf(theta), s = sinf(theta);
  a_out = a0 * c - b0 * s;
  b_out = a0 * s + b0 * c;
}

__global__ void rope_append_kernel(float* q, const float* __restrict__ k, const float* __restrict__ v,
                                   const float* __restrict__ bq, const float* __restrict__ bk,
                                   const float* __restrict__ bv, StepRefs st, float* kv_k, float* kv_v,
                                   AttentionShape a, float base, int halves) {
  const int t = blockIdx.x;
  const int pos = st.pos[t];
  const int hd = a.head_dim, half = hd / 2;
  const int dim = a.heads * hd, kv_dim = a.kv_heads * hd;
  for (int idx = threadIdx.x; idx < a.heads * half; idx += blockDim.x) {
    const int h = idx / half, i = idx % half;
    float* x = q + static_cast<size_t>(t) * dim + h * hd;
    float ra, rb;
    int ia, ib;
    rotate(x, bq ? bq + h * hd : nullptr, i, hd, pos, base, halves, ra, rb, ia, ib);
    x[ia] = ra;
    x[ib] = rb;
  }
  const size_t dst = kv_at(st, a, t, pos);
  for (int idx = threadIdx.x; idx < a.kv_heads * half; idx += blockDim.x) {
    const int h = idx / half, i = idx % half;
    float ra, rb;
    int ia, ib;
    rotate(k + static_cast<size_t>(t) * kv_dim + h * hd, bk ? bk + h * hd : nullptr, i, hd, pos, base, halves, ra,
           rb, ia, ib);
    kv_k[dst + h * hd + ia] = ra;
    kv_k[dst + h * hd + ib] = rb;
  }
  for (int i = threadIdx.x; i < kv_dim; i += blockDim.x) {
    kv_v[dst + i] = v[static_cast<size_t>(t) * kv_dim + i] + (bv ? bv[i] : 0.f);
  }
}

__device__ float block_reduce(float v, bool is_max, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const float o = __shfl_xor_sync(kFull, v, off);
    v = is_max ? fmaxf(v, o) : v + o;
  }
  __syncthreads();  // scratch may still be read from the last call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float r = scratch[0];
    for (int i = 1; i < static_cast<int>(blockDim.x >> 5); ++i) r = is_max ? fmaxf(r, scratch[i]) : r + scratch[i];
    scratch[0] = r;
  }
  __syncthreads();
  return scratch[0];
}

// One part of one head's attention: scores, their max and sum, and the
// weighted values, unnormalized.
__global__ void attention_part_kernel(const float* __restrict__ q, StepRefs st, const float* __restrict__ kv_k,
                                      const float* __restrict__ kv_v, AttentionShape a, float* part_o,
                                      float* part_ml) {
  extern __shared__ float shared[];
  const int t = blockIdx.x, h = blockIdx.y, part = blockIdx.z;
  const int hd = a.head_dim;
  float* qs = shared;           // head_dim
  float* sc = shared + hd;      // split
  float* scratch = sc + a.split;  // 32
  const int end_pos = st.pos[t] + 1;
  const int start = part * a.split, end = min(start + a.split, end_pos);
  const size_t out = (static_cast<size_t>(t) * a.heads + h) * a.splits + part;
  if (start >= end_pos) {
    if (threadIdx.x == 0) {
      part_ml[2 * out] = -FLT_MAX;
      part_ml[2 * out + 1] = 0.f;
    }
    for (int d = threadIdx.x; d < hd; d += blockDim.x) part_o[out * hd + d] = 0.f;
    return;
  }
  const int kvh = h / (a.heads / a.kv_heads);
  for (int d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = q[(static_cast<size_t>(t) * a.heads + h) * hd + d];
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int p = start + warp; p < end; p += warps) {
    const float* kp = kv_k + kv_at(st, a, t, p) + kvh * hd;
    float d = 0.f;
    for (int j = lane; j < hd; j += 32) d = fmaf(qs[j], kp[j], d);
    d = warp_sum(d);
    if (lane == 0) sc[p - start] = d * a.scale;
  }
  __syncthreads();
  float m = -FLT_MAX;
  for (int i = threadIdx.x; i < end - start; i += blockDim.x) m = fmaxf(m, sc[i]);
  m = block_reduce(m, true, scratch);
  float l = 0.f;
  for (int i = threadIdx.x; i < end - start; i += blockDim.x) {
    const float e = expf(sc[i] - m);
    sc[i] = e;
    l += e;
  }
  l = block_reduce(l, false, scratch);  // its barriers also publish sc
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float acc = 0.f;
    for (int p = start; p < end; ++p) acc = fmaf(sc[p - start], kv_v[kv_at(st, a, t, p) + kvh * hd + d], acc);
    part_o[out * hd + d] = acc;
  }
  if (threadIdx.x == 0) {
    part_ml[2 * out] = m;
    part_ml[2 * out + 1] = l;
  }
}

__global__ void attention_combine_kernel(const float* __restrict__ part_o, const float* __restrict__ part_ml,
                                         AttentionShape a, float* __restrict__ out) {
  const int t = blockIdx.x, h = blockIdx.y, hd = a.head_dim;
  const size_t base = (static_cast<size_t>(t) * a.heads + h) * a.splits;
  float m = -FLT_MAX;
  for (int s = 0; s < a.splits; ++s) m = fmaxf(m, part_ml[2 * (base + s)]);
  float l = 0.f;
  for (int s = 0; s < a.splits; ++s) l += part_ml[2 * (base + s) + 1] * expf(part_ml[2 * (base + s)] - m);
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float acc = 0.f;
    for (int s = 0; s < a.splits; ++s) {
      const float wgt = part_ml[2 * (base + s) + 1] > 0.f ? expf(part_ml[2 * (base + s)] - m) : 0.f;
      acc = fmaf(part_o[(base + s) * hd + d], wgt, acc);
    }
    out[(static_cast<size_t>(t) * a.heads + h) * hd + d] = acc / l;
  }
}

__global__ void silu_mul_kernel(float* gate, const float* __restrict__ up, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    gate[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void penalize_kernel(float* logits, int rows, int vocab, StepRefs st) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const float pen = st.row_penalty[r];
  const int off = st.row_recent_off[r], len = st.row_recent_len[r];
  float* row = logits + static_cast<size_t>(r) * vocab;
  for (int j = 0; j < len; ++j) {  // in order: a repeated id is penalized again, as on the CPU
    const int id = st.recent[off + j];
    if (id < 0 || id >= vocab) continue;
    const float l = row[id];
    row[id] = l > 0 ? l / pen : l * pen;
  }
}

// Orders floats as unsigned integers: a > b exactly when key(a) > key(b).
__device__ __forceinline__ uint32_t order_key(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

constexpr int kTies = 256;  // ties at the k-th value kept to choose the lowest ids from

// Radix select of the k-th largest key (4 passes of 8 bits), then a gather
// of everything above it and of the lowest ids equal to it.
__global__ void top_k_kernel(const float* __restrict__ logits, int vocab, const uint8_t* __restrict__ banned,
                             const int32_t* __restrict__ row_k, float* values, int32_t* ids, int32_t* counts,
                             int max_candidates) {
  const int r = blockIdx.x;
  const float* l = logits + static_cast<size_t>(r) * vocab;
  __shared__ unsigned hist[256];
  __shared__ uint32_t prefix, mask;
  __shared__ int remaining, above, ties;
  __shared__ int tie_ids[kTies];
  if (threadIdx.x == 0) {
    prefix = 0;
    mask = 0;
  }
  for (int pass = 0; pass < 4; ++pass) {
    const int shift = 24 - 8 * pass;
    for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
      if (banned[i]) continue;
      const uint32_t key = order_key(l[i]);
      if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 0xffu], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      if (pass == 0) {
        unsigned total = 0;
        for (int b = 0; b < 256; ++b) total += hist[b];
        remaining = min(min(row_k[r], max_candidates), static_cast<int>(total));
      }
      int chosen = 0;
      unsigned cum = 0;
      for (int b = 255; b >= 0; --b) {
        if (static_cast<int>(cum + hist[b]) >= remaining) {
          chosen = b;
          break;
        }
        cum += hist[b];
      }
      remaining -= static_cast<int>(cum);
      prefix |= static_cast<uint32_t>(chosen) << shift;
      mask |= 0xffu << shift;
      above = 0;
      ties = 0;
    }
    __syncthreads();
  }
  const uint32_t kth = prefix;
  float* out_v = values + static_cast<size_t>(r) * max_candidates;
  int32_t* out_i = ids + static_cast<size_t>(r) * max_candidates;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    if (banned[i]) continue;
    const uint32_t key = order_key(l[i]);
    if (key > kth) {
      const int slot = atomicAdd(&above, 1);
      if (slot < max_candidates) {
        out_v[slot] = l[i];
        out_i[slot] = i;
      }
    } else if (key == kth) {
      const int slot = atomicAdd(&ties, 1);
      if (slot < kTies) tie_ids[slot] = i;
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    int n = min(above, max_candidates);
    const int kept = min(ties, kTies);
    // The `remaining` lowest ids among the ties, by selection.
    for (int take = 0; take < remaining && take < kept && n < max_candidates; ++take) {
      int best = take;
      for (int j = take + 1; j < kept; ++j) {
        if (tie_ids[j] < tie_ids[best]) best = j;
      }
      const int id = tie_ids[best];
      tie_ids[best] = tie_ids[take];
      tie_ids[take] = id;
      out_v[n] = l[id];
      out_i[n] = id;
      ++n;
    }
    counts[r] = n;
  }
}

unsigned blocks_for(size_t n, unsigned threads) {
  const size_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 65535 ? (b == 0 ? 1 : b) : 65535);
}

}  // namespace

void embed(const DeviceWeight& w, const int32_t* token, int tokens, float* x, cudaStream_t s) {
  if (tokens <= 0) return;
  const unsigned threads = 128;
  switch (w.type) {
    case kF32: embed_kernel<kF32><<<tokens, threads, 0, s>>>(w, token, x); break;
    case kF16: embed_kernel<kF16><<<tokens, threads, 0, s>>>(w, token, x); break;
    case kBF16: embed_kernel<kBF16><<<tokens, threads, 0, s>>>(w, token, x); break;
    default: embed_kernel<kQ8_0><<<tokens, threads, 0, s>>>(w, token, x); break;
  }
}

void rms_norm(const float* x, const float* w, float* out, int rows, int n, float eps, const int32_t* gather,
              cudaStream_t s) {
  if (rows <= 0) return;
  rms_norm_kernel<<<rows, 256, 0, s>>>(x, w, out, n, eps, gather);
}

void matvec(const DeviceWeight& w, const float* x, float* y, int tokens, bool accumulate, cudaStream_t s) {
  if (tokens <= 0) return;
  const unsigned threads = 256;  // 8 warps, 32 rows
  const unsigned rows_per_block = threads / 32 * kRowsPerWarp;
  const unsigned grid = (static_cast<unsigned>(w.rows) + rows_per_block - 1) / rows_per_block;
  const int acc = accumulate ? 1 : 0;
  switch (w.type) {
    case kF32: matvec_kernel<kF32><<<grid, threads, 0, s>>>(w, x, y, tokens, acc); break;
    case kF16: matvec_kernel<kF16><<<grid, threads, 0, s>>>(w, x, y, tokens, acc); break;
    case kBF16: matvec_kernel<kBF16><<<grid, threads, 0, s>>>(w, x, y, tokens, acc); break;
    default: matvec_kernel<kQ8_0><<<grid, threads, 0, s>>>(w, x, y, tokens, acc); break;
  }
}

void dequantize(const DeviceWeight& w, void* out, bool bf16, cudaStream_t s) {
  const size_t n = static_cast<size_t>(w.rows) * w.cols / 8;
  const unsigned grid = blocks_for(n, 256), threads = 256;
  const int b = bf16 ? 1 : 0;
  switch (w.type) {
    case kF32: dequantize_kernel<kF32><<<grid, threads, 0, s>>>(w, out, b); break;
    case kF16: dequantize_kernel<kF16><<<grid, threads, 0, s>>>(w, out, b); break;
    case kBF16: dequantize_kernel<kBF16><<<grid, threads, 0, s>>>(w, out, b); break;
    default: dequantize_kernel<kQ8_0><<<grid, threads, 0, s>>>(w, out, b); break;
  }
}

void to_16bit(const float* x, void* out, size_t n, bool bf16, cudaStream_t s) {
  if (n == 0) return;
  to_16bit_kernel<<<blocks_for(n, 256), 256, 0, s>>>(x, out, n, bf16 ? 1 : 0);
}

void rope_append(float* q, const float* k, const float* v, const float* bq, const float* bk, const float* bv,
                 int tokens, const StepRefs& step, float* kv_k, float* kv_v, const AttentionShape& a, float base,
                 bool halves, cudaStream_t s) {
  if (tokens <= 0) return;
  rope_append_kernel<<<tokens, 128, 0, s>>>(q, k, v, bq, bk, bv, step, kv_k, kv_v, a, base, halves ? 1 : 0);
}

void attention(const float* q, int tokens, const StepRefs& step, const float* kv_k, const float* kv_v,
               const AttentionShape& a, float* part_o, float* part_ml, float* out, cudaStream_t s) {
  if (tokens <= 0) return;
  const dim3 grid(static_cast<unsigned>(tokens), static_cast<unsigned>(a.heads), static_cast<unsigned>(a.splits));
  const size_t shared = (static_cast<size_t>(a.head_dim) + a.split + 32) * sizeof(float);
  attention_part_kernel<<<grid, 128, shared, s>>>(q, step, kv_k, kv_v, a, part_o, part_ml);
  attention_combine_kernel<<<dim3(static_cast<unsigned>(tokens), static_cast<unsigned>(a.heads)), 64, 0, s>>>(
      part_o, part_ml, a, out);
}

void silu_mul(float* gate, const float* up, size_t n, cudaStream_t s) {
  if (n == 0) return;
  silu_mul_kernel<<<blocks_for(n, 256), 256, 0, s>>>(gate, up, n);
}

void penalize(float* logits, int rows, int vocab, const StepRefs& step, cudaStream_t s) {
  if (rows <= 0) return;
  penalize_kernel<<<(rows + 63) / 64, 64, 0, s>>>(logits, rows, vocab, step);
}

void top_k(const float* logits, int rows, int vocab, const uint8_t* banned, const int32_t* row_k, float* values,
           int32_t* ids, int32_t* counts, int max_candidates, cudaStream_t s) {
  if (rows <= 0) return;
  top_k_kernel<<<rows, 1024, 0, s>>>(logits, vocab, banned, row_k, values, ids, counts, max_candidates);
}

}  // namespace sluice::cuda::k
