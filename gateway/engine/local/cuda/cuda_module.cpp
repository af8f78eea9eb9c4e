// libsluice-cuda.so, the CUDA module (built when nvcc is found): uploads, the
// step's buffers, the forward pass as a sequence of kernels on one stream,
// cuBLAS for prompt tokens, CUDA graphs for decode steps, and each sampled
// row's top candidates on the device.
#include "gateway/engine/local/cuda/device_runner.hpp"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <stdexcept>

#include "gateway/engine/local/cuda/cuda_kernels.hpp"
#include "gateway/engine/local/cuda/cuda_ops.hpp"
#include "gateway/engine/local/kv_pool.hpp"

namespace sluice::cuda {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    throw std::runtime_error(std::string(what) + ": " + cublasGetStatusString(s));
  }
}

// Device memory freed with its owner.
class DeviceMemory {
 public:
  DeviceMemory() = default;
  explicit DeviceMemory(size_t bytes) { check(cudaMalloc(&p_, std::max<size_t>(bytes, 256)), "cudaMalloc"); }
  ~DeviceMemory() {
    if (p_) cudaFree(p_);
  }
  DeviceMemory(DeviceMemory&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  DeviceMemory& operator=(DeviceMemory&& o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  template <typename T = void>
  T* get() const {
    return static_cast<T*>(p_);
  }

 private:
  void* p_ = nullptr;
};

class PinnedMemory {
 public:
  PinnedMemory() = default;
  explicit PinnedMemory(size_t bytes) { check(cudaMallocHost(&p_, std::max<size_t>(bytes, 256)), "cudaMallocHost"); }
  ~PinnedMemory() {
    if (p_) cudaFreeHost(p_);
  }
  PinnedMemory(PinnedMemory&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  PinnedMemory& operator=(PinnedMemory&& o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  template <typename T = void>
  T* get() const {
    return static_cast<T*>(p_);
  }

 private:
  void* p_ = nullptr;
};

k::DeviceWeight device_weight(const kernels::Weight& w, const Placement& p, char* base) {
  k::DeviceWeight d;
  d.type = static_cast<int>(w.type);
  d.data = base + p.offset;
  d.scales = w.type == gguf::TensorType::kQ8_0 ? reinterpret_cast<const uint16_t*>(base + p.scale_offset) : nullptr;
  d.rows = static_cast<int>(w.rows);
  d.cols = static_cast<int>(w.cols);
  return d;
}

void upload(const kernels::Weight& w, const Placement& p, char* base) {
  if (w.type == gguf::TensorType::kQ8_0) {
    const RepackedQ8 r = repack_q8_0(w);
    check(cudaMemcpy(base + p.offset, r.quants.data(), p.bytes, cudaMemcpyHostToDevice), "upload");
    check(cudaMemcpy(base + p.scale_offset, r.scales.data(), p.scale_bytes, cudaMemcpyHostToDevice), "upload");
  } else {
    check(cudaMemcpy(base + p.offset, w.data, p.bytes, cudaMemcpyHostToDevice), "upload");
  }
}

const float* upload_floats(const std::vector<float>& v, const Placement& p, char* base) {
  check(cudaMemcpy(base + p.offset, v.data(), p.bytes, cudaMemcpyHostToDevice), "upload");
  return reinterpret_cast<const float*>(base + p.offset);
}

// What the prompt path's GEMMs need: cuBLAS on the stream, scratch for a
// weight matrix converted whole and for 16-bit activations.
struct Gemm {
  cublasHandle_t blas = nullptr;
  cudaStream_t stream = nullptr;
  void* weights = nullptr;      // largest matrix, as floats
  void* activations = nullptr;  // tokens x largest cols, 16-bit
  bool bf16 = false;            // tensor cores in bfloat16, else FP32
};

// y = x . w^T for `tokens` tokens, the first `decode` of them through the
// batch-invariant decode kernel, the rest (prompt tokens) through cuBLAS: in
// FP32 (the weights converted to floats first; the CPU's results within
// 2e-3), or in bfloat16 on the tensor cores (activations rounded to it).
void matmul(const Gemm& g, const k::DeviceWeight& w, const float* x, float* y, int tokens, int decode,
            bool accumulate) {
  k::matvec(w, x, y, decode, accumulate, g.stream);
  const int rest = tokens - decode;
  if (rest <= 0) return;
  const float* xr = x + static_cast<size_t>(decode) * w.cols;
  float* yr = y + static_cast<size_t>(decode) * w.rows;
  const float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
  if (!g.bf16) {
    const float* wf = static_cast<const float*>(w.data);
    if (w.type != k::kF32) {
      k::dequantize(w, g.weights, false, g.stream);
      wf = static_cast<const float*>(g.weights);
    }
    check(cublasSgemm(g.blas, CUBLAS_OP_T, CUBLAS_OP_N, w.rows, rest, w.cols, &alpha, wf, w.cols, xr, w.cols, &beta,
                      yr, w.rows),
          "cublasSgemm");
    return;
  }
  const void* wh = w.data;
  cudaDataType t = w.type == k::kF16 ? CUDA_R_16F : CUDA_R_16BF;
  if (w.type == k::kF32 || w.type == k::kQ8_0) {
    k::dequantize(w, g.weights, true, g.stream);
    wh = g.weights;
  }
  k::to_16bit(xr, g.activations, static_cast<size_t>(rest) * w.cols, t == CUDA_R_16BF, g.stream);
  check(cublasGemmEx(g.blas, CUBLAS_OP_T, CUBLAS_OP_N, w.rows, rest, w.cols, &alpha, wh, t, w.cols, g.activations, t,
                     w.cols, &beta, yr, CUDA_R_32F, w.rows, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx");
}

class Runner final : public DeviceRunner {
 public:
  Runner(const Model& model, const BackendOptions& o)
      : model_(&model),
        o_(o),
        c_(model_->config()),
        max_tokens_(static_cast<int>(std::max<int64_t>(o.max_batch_tokens, o.max_batch))),
        layout_(max_tokens_, o.max_batch, static_cast<int>(KvBlocks::blocks_for(o.context)),
                o.max_batch * 2 * 64) {
    if (c_.dim % 8 != 0 || c_.ffn % 8 != 0) throw std::runtime_error("the CUDA backend needs dimensions divisible by 8");
    check(cudaSetDevice(0), "cudaSetDevice");
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    check(cublasCreate(&blas_), "cublasCreate");
    check(cublasSetStream(blas_, stream_), "cublasSetStream");
    check(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");  // no TF32 in the FP32 GEMMs

    const WeightPlan plan = plan_weights(*model_);
    const int64_t kv_dim = c_.kv_heads * c_.head_dim;
    splits_ = static_cast<int>((o.context + kAttentionSplit - 1) / kAttentionSplit);
    const size_t T = static_cast<size_t>(max_tokens_), R = static_cast<size_t>(o.max_batch);
    const size_t act = T * static_cast<size_t>(c_.dim) * 4 * sizeof(float) +
                       T * static_cast<size_t>(kv_dim) * 2 * sizeof(float) +
                       T * static_cast<size_t>(c_.ffn) * 2 * sizeof(float) +
                       T * static_cast<size_t>(c_.heads * splits_) * (c_.head_dim + 2) * sizeof(float) +
                       R * static_cast<size_t>(c_.vocab + c_.dim) * sizeof(float) +
                       static_cast<size_t>(c_.ffn * c_.dim) * sizeof(float);
    const size_t kv = kv_bytes(c_, o.kv_blocks + 1);
    size_t free_bytes = 0, total_bytes = 0;
    check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
    if (plan.total + kv + act > free_bytes) {
      throw std::runtime_error("the model (" + std::to_string(plan.total >> 20) + " MiB), its KV cache (" +
                               std::to_string(kv >> 20) + " MiB) and step buffers (" + std::to_string(act >> 20) +
                               " MiB) do not fit in the GPU's free memory (" + std::to_string(free_bytes >> 20) +
                               " MiB); lower local.kv_cache_mb or local.max_batch");
    }
    weights_ = DeviceMemory(plan.total);
    char* base = weights_.get<char>();
    size_t i = 0;
    auto next = [&] { return plan.items.at(i++); };
    {
      const Placement p = next();
      upload(model_->embedding(), p, base);
      embed_ = device_weight(model_->embedding(), p, base);
    }
    output_ = embed_;
    if (model_->output().data != model_->embedding().data) {
      const Placement p = next();
      upload(model_->output(), p, base);
      output_ = device_weight(model_->output(), p, base);
    }
    output_norm_ = upload_floats(model_->output_norm(), next(), base);
    for (const Model::Layer& L : model_->layers()) {
      DeviceLayer d;
      for (auto [src, dst] : {std::pair{&L.wq, &d.wq}, {&L.wk, &d.wk}, {&L.wv, &d.wv}, {&L.wo, &d.wo},
                              {&L.gate, &d.gate}, {&L.up, &d.up}, {&L.down, &d.down}}) {
        const Placement p = next();
        upload(*src, p, base);
        *dst = device_weight(*src, p, base);
      }
      d.attn_norm = upload_floats(L.attn_norm, next(), base);
      d.ffn_norm = upload_floats(L.ffn_norm, next(), base);
      if (!L.bq.empty()) {
        d.bq = upload_floats(L.bq, next(), base);
        d.bk = upload_floats(L.bk, next(), base);
        d.bv = upload_floats(L.bv, next(), base);
      }
      layers_.push_back(d);
    }
    weight_bytes_ = plan.total;

    kv_k_ = DeviceMemory(kv / 2);
    kv_v_ = DeviceMemory(kv / 2);
    check(cudaMemset(kv_k_.get(), 0, kv / 2), "cudaMemset");
    check(cudaMemset(kv_v_.get(), 0, kv / 2), "cudaMemset");
    auto floats = [](size_t n) { return DeviceMemory(n * sizeof(float)); };
    x_ = floats(T * c_.dim);
    xn_ = floats(T * c_.dim);
    q_ = floats(T * c_.dim);
    att_ = floats(T * c_.dim);
    k_ = floats(T * kv_dim);
    v_ = floats(T * kv_dim);
    g_ = floats(T * c_.ffn);
    u_ = floats(T * c_.ffn);
    x16_ = DeviceMemory(T * static_cast<size_t>(std::max(c_.dim, c_.ffn)) * 2);
    size_t largest = 0;  // elements of the largest layer matrix
    for (const Model::Layer& L : model_->layers()) {
      for (const kernels::Weight* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down}) {
        largest = std::max(largest, static_cast<size_t>(w->rows * w->cols));
      }
    }
    wscratch_ = DeviceMemory(largest * sizeof(float));
    gemm_ = {blas_, stream_, wscratch_.get(), x16_.get(), o.cuda_prompt_bf16};
    part_o_ = floats(T * c_.heads * splits_ * c_.head_dim);
    part_ml_ = floats(T * c_.heads * splits_ * 2);
    rows_ = floats(R * c_.dim);
    logits_ = floats(R * c_.vocab);
    std::vector<uint8_t> banned(static_cast<size_t>(c_.vocab), 0);
    for (int32_t b : o.banned) {
      if (b >= 0 && b < c_.vocab) banned[static_cast<size_t>(b)] = 1;
    }
    banned_ = DeviceMemory(banned.size());
    check(cudaMemcpy(banned_.get(), banned.data(), banned.size(), cudaMemcpyHostToDevice), "upload");

    step_dev_ = DeviceMemory(layout_.bytes());
    step_host_ = PinnedMemory(layout_.bytes());
    cand_dev_ = DeviceMemory(3 * candidates_bytes());
    cand_host_ = PinnedMemory(3 * candidates_bytes());
    const int32_t* sd = step_dev_.get<int32_t>();
    refs_.token = sd + layout_.token;
    refs_.pos = sd + layout_.pos;
    refs_.seq_of = sd + layout_.seq_of;
    refs_.table = sd + layout_.table;
    refs_.max_blocks = layout_.max_blocks;
    refs_.row_token = sd + layout_.row_token;
    refs_.row_k = sd + layout_.row_k;
    refs_.row_penalty = reinterpret_cast<const float*>(sd + layout_.row_penalty);
    refs_.row_recent_off = sd + layout_.row_recent_off;
    refs_.row_recent_len = sd + layout_.row_recent_len;
    refs_.recent = sd + layout_.recent;
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }

  ~Runner() override {
    for (auto& [bucket, exec] : graphs_) cudaGraphExecDestroy(exec);
    if (blas_) cublasDestroy(blas_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  const StepLayout& layout() const override { return layout_; }

  void run(const StepImage& image, float* logits) override {
    std::memcpy(step_host_.get(), image.ints.data(), layout_.bytes());
    check(cudaMemcpyAsync(step_dev_.get(), step_host_.get(), layout_.bytes(), cudaMemcpyHostToDevice, stream_),
          "cudaMemcpyAsync");
    if (image.bucket > 0 && !logits) {
      check(cudaGraphLaunch(graph_for(image.bucket), stream_), "cudaGraphLaunch");
    } else {
      forward(image.tokens, image.decode, image.rows, logits);
    }
    const size_t R = static_cast<size_t>(image.rows);
    if (R > 0) {
      char* dev = cand_dev_.get<char>();
      char* host = cand_host_.get<char>();
      const size_t cand = candidates_bytes();
      check(cudaMemcpyAsync(host, dev, R * kMaxCandidates * 4, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
      check(cudaMemcpyAsync(host + cand, dev + cand, R * kMaxCandidates * 4, cudaMemcpyDeviceToHost, stream_),
            "cudaMemcpyAsync");
      check(cudaMemcpyAsync(host + 2 * cand, dev + 2 * cand, R * 4, cudaMemcpyDeviceToHost, stream_),
            "cudaMemcpyAsync");
    }
    check(cudaStreamSynchronize(stream_), "the CUDA step");
  }

  int count(int row) const override {
    return reinterpret_cast<const int32_t*>(cand_host_.get<char>() + 2 * candidates_bytes())[row];
  }
  const float* values(int row) const override {
    return cand_host_.get<float>() + static_cast<size_t>(row) * kMaxCandidates;
  }
  const int32_t* ids(int row) const override {
    return reinterpret_cast<const int32_t*>(cand_host_.get<char>() + candidates_bytes()) +
           static_cast<size_t>(row) * kMaxCandidates;
  }

 private:
  struct DeviceLayer {
    k::DeviceWeight wq, wk, wv, wo, gate, up, down;
    const float *attn_norm = nullptr, *ffn_norm = nullptr, *bq = nullptr, *bk = nullptr, *bv = nullptr;
  };

  void mm(const k::DeviceWeight& w, const float* x, float* y, int tokens, int decode, bool accumulate) {
    matmul(gemm_, w, x, y, tokens, decode, accumulate);
  }

  // The whole step on the stream (or into the graph being captured).
  void forward(int tokens, int decode, int rows, float* logits_host) {
    cudaStream_t s = stream_;
    const int T = tokens, D = decode, dim = static_cast<int>(c_.dim), ffn = static_cast<int>(c_.ffn);
    float *x = x_.get<float>(), *xn = xn_.get<float>(), *q = q_.get<float>(), *kk = k_.get<float>(),
          *vv = v_.get<float>(), *att = att_.get<float>(), *g = g_.get<float>(), *u = u_.get<float>();
    k::AttentionShape a;
    a.layers = static_cast<int>(c_.layers);
    a.heads = static_cast<int>(c_.heads);
    a.kv_heads = static_cast<int>(c_.kv_heads);
    a.head_dim = static_cast<int>(c_.head_dim);
    a.split = kAttentionSplit;
    a.splits = splits_;
    a.scale = 1.0f / std::sqrt(static_cast<float>(c_.head_dim));
    k::embed(embed_, refs_.token, T, x, s);
    for (size_t l = 0; l < layers_.size(); ++l) {
      const DeviceLayer& L = layers_[l];
      k::rms_norm(x, L.attn_norm, xn, T, dim, c_.eps, nullptr, s);
      mm(L.wq, xn, q, T, D, false);
      mm(L.wk, xn, kk, T, D, false);
      mm(L.wv, xn, vv, T, D, false);
      a.layer = static_cast<int>(l);
      k::rope_append(q, kk, vv, L.bq, L.bk, L.bv, T, refs_, kv_k_.get<float>(), kv_v_.get<float>(), a, c_.rope_base,
                     c_.rope_halves, s);
      k::attention(q, T, refs_, kv_k_.get<float>(), kv_v_.get<float>(), a, part_o_.get<float>(),
                   part_ml_.get<float>(), att, s);
      mm(L.wo, att, x, T, D, true);
      k::rms_norm(x, L.ffn_norm, xn, T, dim, c_.eps, nullptr, s);
      mm(L.gate, xn, g, T, D, false);
      mm(L.up, xn, u, T, D, false);
      k::silu_mul(g, u, static_cast<size_t>(T) * ffn, s);
      mm(L.down, g, x, T, D, true);
    }
    if (rows > 0) {
      k::rms_norm(x, output_norm_, rows_.get<float>(), rows, dim, c_.eps, refs_.row_token, s);
      // Logits always through the batch-invariant kernel.
      k::matvec(output_, rows_.get<float>(), logits_.get<float>(), rows, false, s);
      if (logits_host) {
        check(cudaMemcpyAsync(logits_host, logits_.get(), static_cast<size_t>(rows) * c_.vocab * sizeof(float),
                              cudaMemcpyDeviceToHost, s),
              "cudaMemcpyAsync");
      }
      k::penalize(logits_.get<float>(), rows, static_cast<int>(c_.vocab), refs_, s);
      const size_t cand = candidates_bytes();
      char* dev = cand_dev_.get<char>();
      k::top_k(logits_.get<float>(), rows, static_cast<int>(c_.vocab), banned_.get<uint8_t>(), refs_.row_k,
               reinterpret_cast<float*>(dev), reinterpret_cast<int32_t*>(dev + cand),
               reinterpret_cast<int32_t*>(dev + 2 * cand), kMaxCandidates, s);
    }
    check(cudaGetLastError(), "a CUDA kernel launch");
  }

  cudaGraphExec_t graph_for(int bucket) {
    auto it = graphs_.find(bucket);
    if (it != graphs_.end()) return it->second;
    cudaGraph_t graph = nullptr;
    check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    try {
      forward(bucket, bucket, bucket, nullptr);
    } catch (...) {
      cudaStreamEndCapture(stream_, &graph);
      if (graph) cudaGraphDestroy(graph);
      throw;
    }
    check(cudaStreamEndCapture(stream_, &graph), "cudaStreamEndCapture");
    cudaGraphExec_t exec = nullptr;
    const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    check(e, "cudaGraphInstantiate");
    graphs_.emplace(bucket, exec);
    return exec;
  }

  // Values, then ids, then counts, each part this many bytes (counts fewer).
  size_t candidates_bytes() const { return static_cast<size_t>(o_.max_batch) * kMaxCandidates * 4; }

  const Model* model_;
  BackendOptions o_;
  ModelConfig c_;
  int max_tokens_;
  StepLayout layout_;
  int splits_ = 1;
  size_t weight_bytes_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  DeviceMemory weights_, kv_k_, kv_v_, x_, xn_, q_, att_, k_, v_, g_, u_, x16_, wscratch_, part_o_, part_ml_, rows_,
      logits_, banned_, step_dev_, cand_dev_;
  Gemm gemm_;
  PinnedMemory step_host_, cand_host_;
  k::DeviceWeight embed_, output_;
  const float* output_norm_ = nullptr;
  std::vector<DeviceLayer> layers_;
  k::StepRefs refs_;
  std::map<int, cudaGraphExec_t> graphs_;
};

}  // namespace

}  // namespace sluice::cuda

extern "C" __attribute__((visibility("default"))) void sluice_cuda_probe_v1(sluice::cuda::Probe* out) {
  sluice::cuda::Probe p;
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  cudaDeviceProp prop{};
  if (e != cudaSuccess) {
    p.reason = cudaGetErrorString(e);
    cudaGetLastError();  // clear it
  } else if (count == 0) {
    p.reason = "no CUDA GPU was found";
  } else if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    p.reason = "the first GPU's properties cannot be read";
  } else {
    p.available = true;
    p.name = prop.name;
    p.major = prop.major;
    p.minor = prop.minor;
    p.memory_bytes = prop.totalGlobalMem;
  }
  *out = std::move(p);
}

extern "C" __attribute__((visibility("default"))) sluice::cuda::DeviceRunner* sluice_cuda_open_v1(
    const sluice::Model* model, const sluice::BackendOptions* options, std::string* error) {
  try {
    return new sluice::cuda::Runner(*model, *options);
  } catch (const std::exception& e) {
    *error = e.what();
    return nullptr;
  }
}

namespace sluice::cuda {

namespace ops {

namespace {

struct Context {
  Context() {
    check(cudaStreamCreate(&stream), "cudaStreamCreate");
    check(cublasCreate(&blas), "cublasCreate");
    check(cublasSetStream(blas, stream), "cublasSetStream");
  }
  ~Context() {
    cublasDestroy(blas);
    cudaStreamDestroy(stream);
  }
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
};

template <typename T>
DeviceMemory to_device(const std::vector<T>& v) {
  DeviceMemory m(v.size() * sizeof(T));
  check(cudaMemcpy(m.get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy");
  return m;
}

std::vector<float> to_host(const DeviceMemory& m, size_t n) {
  std::vector<float> out(n);
  check(cudaMemcpy(out.data(), m.get(), n * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy");
  return out;
}

}  // namespace

std::vector<float> matmul(const kernels::Weight& w, const std::vector<float>& x, int tokens, bool gemm, bool bf16) {
  Context ctx;
  WeightPlan plan;
  plan.add("w", w);
  DeviceMemory dw(plan.total);
  upload(w, plan.items[0], dw.get<char>());
  const k::DeviceWeight d = device_weight(w, plan.items[0], dw.get<char>());
  DeviceMemory dx = to_device(x);
  DeviceMemory dy(static_cast<size_t>(tokens) * w.rows * sizeof(float));
  DeviceMemory x16(x.size() * 2), scratch(static_cast<size_t>(w.rows * w.cols) * sizeof(float));
  const Gemm g{ctx.blas, ctx.stream, scratch.get(), x16.get(), bf16};
  cuda::matmul(g, d, dx.get<float>(), dy.get<float>(), tokens, gemm ? 0 : tokens, false);
  check(cudaStreamSynchronize(ctx.stream), "matmul");
  return to_host(dy, static_cast<size_t>(tokens) * w.rows);
}

std::vector<float> rms_norm(const std::vector<float>& x, const std::vector<float>& w, int rows, float eps) {
  Context ctx;
  DeviceMemory dx = to_device(x), dw = to_device(w), dy(x.size() * sizeof(float));
  k::rms_norm(dx.get<float>(), dw.get<float>(), dy.get<float>(), rows, static_cast<int>(w.size()), eps, nullptr,
              ctx.stream);
  check(cudaStreamSynchronize(ctx.stream), "rms_norm");
  return to_host(dy, x.size());
}

std::vector<float> silu_mul(const std::vector<float>& gate, const std::vector<float>& up) {
  Context ctx;
  DeviceMemory dg = to_device(gate), du = to_device(up);
  k::silu_mul(dg.get<float>(), du.get<float>(), gate.size(), ctx.stream);
  check(cudaStreamSynchronize(ctx.stream), "silu_mul");
  return to_host(dg, gate.size());
}

std::vector<std::pair<float, int32_t>> top_k(const std::vector<float>& logits, const std::vector<uint8_t>& banned,
                                             int kk) {
  Context ctx;
  DeviceMemory dl = to_device(logits), db = to_device(banned), dk = to_device(std::vector<int32_t>{kk});
  DeviceMemory values(kMaxCandidates * sizeof(float)), ids(kMaxCandidates * sizeof(int32_t)), count(sizeof(int32_t));
  k::top_k(dl.get<float>(), 1, static_cast<int>(logits.size()), db.get<uint8_t>(), dk.get<int32_t>(),
           values.get<float>(), ids.get<int32_t>(), count.get<int32_t>(), kMaxCandidates, ctx.stream);
  check(cudaStreamSynchronize(ctx.stream), "top_k");
  int32_t n = 0;
  check(cudaMemcpy(&n, count.get(), sizeof n, cudaMemcpyDeviceToHost), "cudaMemcpy");
  std::vector<float> v(static_cast<size_t>(n));
  std::vector<int32_t> id(static_cast<size_t>(n));
  check(cudaMemcpy(v.data(), values.get(), v.size() * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy");
  check(cudaMemcpy(id.data(), ids.get(), id.size() * sizeof(int32_t), cudaMemcpyDeviceToHost), "cudaMemcpy");
  std::vector<std::pair<float, int32_t>> out;
  for (size_t i = 0; i < v.size(); ++i) out.emplace_back(v[i], id[i]);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  return out;
}

}  // namespace ops

}  // namespace sluice::cuda
