// CPU kernels of the local engine: weight rows in F32, F16, BF16 or Q8_0
// (read in place from the mapped GGUF file) against F32 activations, and a
// small pool of compute threads that splits work by rows. The engine's own
// threads run these, never an I/O thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "gateway/engine/local/gguf.hpp"

namespace sluice::kernels {

class PackedWeight;

// A weight matrix as the file holds it: `rows` rows of `cols` values each
// (PyTorch's [out, in]; GGUF dims {cols, rows}). `packed`, when set, is the
// same matrix laid out for the AVX-512 kernels (pack_for_avx512), which
// matmul reads instead whenever those kernels run.
struct Weight {
  gguf::TensorType type = gguf::TensorType::kF32;
  const uint8_t* data = nullptr;
  int64_t rows = 0, cols = 0;
  const PackedWeight* packed = nullptr;
  size_t row_bytes() const {
    switch (type) {
      case gguf::TensorType::kF32: return static_cast<size_t>(cols) * 4;
      case gguf::TensorType::kF16:
      case gguf::TensorType::kBF16: return static_cast<size_t>(cols) * 2;
      case gguf::TensorType::kQ8_0: return static_cast<size_t>(cols) / 32 * 34;
    }
    return 0;
  }
};

float half_to_float(uint16_t h);
float bf16_to_float(uint16_t b);

// Row `r` of `w` as floats.
void dequantize_row(const Weight& w, int64_t r, float* out);
// dot(row r of w, x[0..cols)).
float dot_row(const Weight& w, int64_t r, const float* x);

// Activations quantized for Q8_0 weights: per block of 32 values, int8 values
// q and a float scale d (max|x| / 127), rounded half to even.
struct QuantizedActivations {
  int64_t cols = 0;
  std::vector<int8_t> q;
  std::vector<float> d;
  int64_t blocks() const { return cols / 32; }
};
void quantize_activations(const float* x, int64_t tokens, int64_t cols, QuantizedActivations& out);

// The kernel paths, chosen at run time: the best the CPU has, unless capped.
//   kPortable: plain C++, any x86-64 (and the reference for the others);
//   kAvx2:     AVX2 + FMA + F16C;
//   kAvx512:   AVX-512 F, BW, VL, VNNI and BF16 for the matrices that were
//              packed (pack_for_avx512); AVX2 for everything else.
enum class KernelPath { kPortable, kAvx2, kAvx512 };
const char* kernel_path_name(KernelPath p);
// The path the kernels take now.
KernelPath active_kernels();
// Caps the path (tests, benchmarks): kAvx512 lifts the cap. The environment
// variable SLUICE_CPU_KERNELS=portable | avx2 sets the cap at start.
void limit_kernels(KernelPath cap);
// Tests: limit_kernels(kPortable), or lift the cap.
void force_portable(bool on);
// True when a vector path (AVX2 or AVX-512) runs.
bool native_kernels_active();

// A weight matrix in the AVX-512 kernels' layout, in memory of its own:
// 16 consecutive rows interleaved so that one 512-bit register holds the
// same columns of 16 rows, one row per lane. BF16: pairs of columns (what
// vdpbf16ps multiplies); Q8_0: 4 bytes of each row's block of 32, stored
// plus 128 as unsigned bytes (what vpdpbusd multiplies), with the blocks'
// F16 scales beside; F16 and F32: one column. Rows are padded to a
// multiple of 16, BF16 columns to a multiple of 16, with zeros.
class PackedWeight {
 public:
  PackedWeight(gguf::TensorType type, int64_t rows, int64_t cols, size_t bytes);
  ~PackedWeight();
  PackedWeight(const PackedWeight&) = delete;
  PackedWeight& operator=(const PackedWeight&) = delete;

  gguf::TensorType type() const { return type_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  uint8_t* data() const { return data_; }

 private:
  gguf::TensorType type_;
  int64_t rows_, cols_;
  uint8_t* data_;  // 2 MiB aligned, anonymous: transparent huge pages where enabled
};

// `w` packed for the AVX-512 kernels; null when the CPU has no AVX-512 BF16
// and VNNI (whatever the cap: tests pack, then choose the path).
std::unique_ptr<PackedWeight> pack_for_avx512(const Weight& w);

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // Calls fn(begin, end) over [0, n) in contiguous parts, one per thread
  // (the caller's included), and returns when all are done. One caller at a
  // time. Threads spin briefly between calls, then sleep.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn);
  // Calls fn(begin, end, worker) over [0, n) in parts of `grain` (the last
  // may be shorter), each thread taking the next part when it is done with
  // its last: a thread that is slowed down (a busy core, a VM's stolen time)
  // does less. `worker` (0 .. size() - 1) names the thread, for per-thread
  // scratch the caller owns.
  void parallel_chunks(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

 private:
  void work(int index);
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_, done_;
  // Written by parallel_for before generation_ moves, read by the workers
  // after they see it move.
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t n_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  bool stop_ = false;  // guarded by mutex_
};

// Keys and values of consecutive positions stored one after the other,
// `stride` floats apart (a KV block, or a whole flat cache).
struct KvRun {
  const float* k = nullptr;
  const float* v = nullptr;
  int64_t count = 0;
};

// Attention of one token: `heads` query heads (q, head_dim floats apart)
// that share one KV head, over every position of `runs` in order:
// out[h] = softmax(q[h] . k * scale) . v, out with head_dim floats per head.
// `scores` is scratch for heads x (positions in runs) floats. A head's result
// depends only on its query and the positions, not on the other heads or
// tokens of the step.
void attention(const float* q, int64_t heads, int64_t head_dim, const KvRun* runs, size_t run_count, int64_t stride,
               float scale, float* scores, float* out);

// Attention of several query rows that share one KV head, each at its own
// position: row r (q[r], head_dim floats) attends positions 0 .. pos[r] of
// `runs` (which hold at least max(pos) + 1 positions), and out[r] receives
// head_dim floats. The rows of several tokens of one sequence (a prompt's
// chunk) go through each key once. A row's result depends only on its
// query and its positions, not on the rows beside it. Only where
// attention_rows_available(head_dim) (the AVX-512 path); `scratch` holds
// attention_rows_scratch(rows, max(pos) + 1, head_dim) floats.
bool attention_rows_available(int64_t head_dim);
size_t attention_rows_scratch(int64_t rows, int64_t positions, int64_t head_dim);
void attention_rows(const float* const* q, float* const* out, const int64_t* pos, int64_t rows, int64_t head_dim,
                    const KvRun* runs, size_t run_count, int64_t stride, float scale, float* scratch);

// The index of the largest of x[0..n), the lowest among equals (as
// std::max_element); NaNs are passed over; 0 when there is none.
int64_t argmax(const float* x, int64_t n);

// gate[i] = silu(gate[i]) * up[i] (SwiGLU).
void silu_mul(float* gate, const float* up, int64_t n);

// y[t][r] = dot(row r of w, x[t]) for t < tokens (x: tokens x cols, y: tokens x rows).
// Q8_0 weights take their activations quantized to Q8_0 (quantize_activations);
// on the AVX-512 path, packed BF16 weights take them rounded to bfloat16
// (to nearest even), as llama.cpp does, and the products summed in float32.
void matmul(ThreadPool& pool, const Weight& w, const float* x, float* y, int64_t tokens);

}  // namespace sluice::kernels
