#include "gateway/engine/local/model.hpp"

#include <algorithm>
#include <cmath>
#include <memory>

namespace sluice {

using kernels::Weight;

FlatKvCache::FlatKvCache(const ModelConfig& c, int64_t capacity)
    : capacity_(capacity),
      row_(c.kv_heads * c.head_dim),
      k_(static_cast<size_t>(c.layers * capacity * row_)),
      v_(static_cast<size_t>(c.layers * capacity * row_)) {}

namespace {

// A tensor of the given shape (PyTorch order: rows, cols), or an error.
bool weight(const gguf::File& f, const std::string& name, int64_t rows, int64_t cols, Weight& out,
            std::string& error) {
  const gguf::TensorInfo* t = f.tensor(name);
  if (!t) {
    error = "tensor " + name + " is missing";
    return false;
  }
  if (t->dims.size() != 2 || static_cast<int64_t>(t->dims[0]) != cols || static_cast<int64_t>(t->dims[1]) != rows) {
    std::string dims;
    for (auto d : t->dims) dims += (dims.empty() ? "" : "x") + std::to_string(d);
    error = "tensor " + name + " is " + dims + "; the model's shape needs " + std::to_string(cols) + "x" +
            std::to_string(rows);
    return false;
  }
  out = {t->type, f.data(*t), rows, cols};
  return true;
}

// A vector (norm weights, biases), as floats whatever its type.
bool vec(const gguf::File& f, const std::string& name, int64_t n, std::vector<float>& out, std::string& error) {
  const gguf::TensorInfo* t = f.tensor(name);
  if (!t) {
    error = "tensor " + name + " is missing";
    return false;
  }
  if (t->dims.size() != 1 || static_cast<int64_t>(t->dims[0]) != n) {
    error = "tensor " + name + " must have " + std::to_string(n) + " values";
    return false;
  }
  out.resize(static_cast<size_t>(n));
  kernels::dequantize_row({t->type, f.data(*t), 1, n}, 0, out.data());
  return true;
}

void rms_norm(const float* x, const std::vector<float>& w, float eps, float* out, int64_t n) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * w[static_cast<size_t>(i)];
}

// cos and sin of every rotation angle of a position (half a head of pairs),
// computed once per step for all its layers and heads.
void rope_angles(int64_t head_dim, int64_t pos, float base, float* cos_sin) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float theta = static_cast<float>(pos) * std::pow(base, -2.0f * static_cast<float>(i) / static_cast<float>(head_dim));
    cos_sin[2 * i] = std::cos(theta);
    cos_sin[2 * i + 1] = std::sin(theta);
  }
}

void rope(float* v, int64_t heads, int64_t head_dim, const float* cos_sin, bool halves) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h) {
    float* x = v + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
      float& a = halves ? x[i] : x[2 * i];
      float& b = halves ? x[i + half] : x[2 * i + 1];
      const float a0 = a, b0 = b;
      a = a0 * c - b0 * s;
      b = a0 * s + b0 * c;
    }
  }
}

}  // namespace

std::unique_ptr<Model> Model::load(std::shared_ptr<const gguf::File> file, std::string& error, WeightLayout layout) {
  std::unique_ptr<Model> m(new Model());
  const gguf::File& f = *file;
  m->file_ = std::move(file);
  ModelConfig& c = m->c_;
  c.arch = std::string(f.get_string("general.architecture").value_or(""));
  if (c.arch != "llama" && c.arch != "qwen2") {
    error = "general.architecture \"" + c.arch + "\" is not supported (llama, qwen2)";
    return nullptr;
  }
  auto need = [&](const char* key, int64_t& out) {
    const auto v = f.get_uint(c.arch + "." + key);
    if (!v || *v == 0 || *v > (1u << 24)) {
      error = c.arch + "." + key + " is missing or out of range";
      return false;
    }
    out = static_cast<int64_t>(*v);
    return true;
  };
  if (!need("embedding_length", c.dim) || !need("block_count", c.layers) ||
      !need("attention.head_count", c.heads) || !need("feed_forward_length", c.ffn) ||
      !need("context_length", c.context)) {
    return nullptr;
  }
  c.kv_heads = static_cast<int64_t>(f.get_uint(c.arch + ".attention.head_count_kv").value_or(c.heads));
  if (c.kv_heads == 0 || c.heads % c.kv_heads != 0 || c.dim % c.heads != 0) {
    error = "attention heads (" + std::to_string(c.heads) + ", " + std::to_string(c.kv_heads) +
            " for keys and values) do not divide the embedding (" + std::to_string(c.dim) + ")";
    return nullptr;
  }
  c.head_dim = c.dim / c.heads;
  if (c.head_dim % 2 != 0) {
    error = "the head dimension must be even for rotary embeddings";
    return nullptr;
  }
  c.eps = static_cast<float>(f.get_float(c.arch + ".attention.layer_norm_rms_epsilon").value_or(1e-5));
  c.rope_base = static_cast<float>(f.get_float(c.arch + ".rope.freq_base").value_or(10000.0));
  c.rope_halves = c.arch == "qwen2";
  c.qkv_bias = c.arch == "qwen2";
  const gguf::TensorInfo* embd = f.tensor("token_embd.weight");
  if (!embd || embd->dims.size() != 2) {
    error = "tensor token_embd.weight is missing";
    return nullptr;
  }
  c.vocab = static_cast<int64_t>(embd->dims[1]);
  if (!weight(f, "token_embd.weight", c.vocab, c.dim, m->embed_, error)) return nullptr;
  if (f.tensor("output.weight")) {
    if (!weight(f, "output.weight", c.vocab, c.dim, m->output_, error)) return nullptr;
  } else {
    m->output_ = m->embed_;  // tied embeddings
  }
  if (!vec(f, "output_norm.weight", c.dim, m->output_norm_, error)) return nullptr;
  const int64_t kv_dim = c.kv_heads * c.head_dim;
  m->layers_.resize(static_cast<size_t>(c.layers));
  for (int64_t l = 0; l < c.layers; ++l) {
    Layer& L = m->layers_[static_cast<size_t>(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    if (!weight(f, p + "attn_q.weight", c.dim, c.dim, L.wq, error) ||
        !weight(f, p + "attn_k.weight", kv_dim, c.dim, L.wk, error) ||
        !weight(f, p + "attn_v.weight", kv_dim, c.dim, L.wv, error) ||
        !weight(f, p + "attn_output.weight", c.dim, c.dim, L.wo, error) ||
        !weight(f, p + "ffn_gate.weight", c.ffn, c.dim, L.gate, error) ||
        !weight(f, p + "ffn_up.weight", c.ffn, c.dim, L.up, error) ||
        !weight(f, p + "ffn_down.weight", c.dim, c.ffn, L.down, error) ||
        !vec(f, p + "attn_norm.weight", c.dim, L.attn_norm, error) ||
        !vec(f, p + "ffn_norm.weight", c.dim, L.ffn_norm, error)) {
      return nullptr;
    }
    if (c.qkv_bias && (!vec(f, p + "attn_q.bias", c.dim, L.bq, error) || !vec(f, p + "attn_k.bias", kv_dim, L.bk, error) ||
                       !vec(f, p + "attn_v.bias", kv_dim, L.bv, error))) {
      return nullptr;
    }
  }
  if (layout == WeightLayout::kCpuKernels && kernels::active_kernels() == kernels::KernelPath::kAvx512) {
    // The embeddings stay in the file for their lookups (a tied output
    // matrix is packed as `output_`; the rows looked up come back from the
    // file).
    std::vector<Weight*> matrices{&m->output_};
    for (Layer& L : m->layers_) matrices.insert(matrices.end(), {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down});
    for (Weight* w : matrices) {
      auto packed = kernels::pack_for_avx512(*w);
      if (!packed) continue;
      w->packed = packed.get();
      m->packed_.push_back(std::move(packed));
      f.release(w->data, w->row_bytes() * static_cast<size_t>(w->rows));
    }
  }
  return m;
}

void Model::forward(kernels::ThreadPool& pool, const int32_t* tokens, int64_t count, int64_t pos0, KvCache& cache,
                    float* logits, bool all_logits) const {
  if (!all_logits) return forward_batch(pool, {{tokens, count, pos0, &cache, logits}});
  // Every position's logits: one chunk per token, in order, through one cache.
  std::vector<BatchChunk> chunks;
  for (int64_t t = 0; t < count; ++t) chunks.push_back({tokens + t, 1, pos0 + t, &cache, logits + t * c_.vocab});
  forward_batch(pool, chunks);
}

namespace {

// Scratch memory that only grows: a step's buffers are allocated once and
// reused by every later step of no larger a batch (a 32-session step's
// logits alone are 19 MB, which the allocator would map, fault in and unmap
// each time).
class Buffer {
 public:
  float* get(size_t n) {
    if (n > size_) {
      data_.reset(new float[n]);
      size_ = n;
    }
    return data_.get();
  }

 private:
  std::unique_ptr<float[]> data_;
  size_t size_ = 0;
};

struct StepScratch {
  std::vector<int32_t> tokens;
  std::vector<int64_t> positions;
  std::vector<KvCache*> caches;
  std::vector<std::vector<kernels::KvRun>> runs;  // per compute thread
  // Attention in tiles of a chunk's tokens (AVX-512): first token and count
  // of each tile, and each compute thread's row pointers and positions.
  std::vector<std::pair<int64_t, int64_t>> tiles;
  struct Rows {
    std::vector<const float*> q;
    std::vector<float*> out;
    std::vector<int64_t> pos;
  };
  std::vector<Rows> tile_rows;
  Buffer x, xn, q, att_out, o, k, v, gate, up, rows, logits, scores, angles;
};

}  // namespace

void Model::forward_batch(kernels::ThreadPool& pool, const std::vector<BatchChunk>& chunks) const {
  // One caller at a time per thread (the engine thread, or a tool's).
  thread_local StepScratch scratch;
  StepScratch& st = scratch;
  // The batch's tokens, each with its position and cache.
  st.tokens.clear();
  st.positions.clear();
  st.caches.clear();
  for (const auto& ch : chunks) {
    for (int64_t i = 0; i < ch.count; ++i) {
      st.tokens.push_back(ch.tokens[i]);
      st.positions.push_back(ch.pos0 + i);
      st.caches.push_back(ch.cache);
    }
  }
  const std::vector<int64_t>& positions = st.positions;
  const std::vector<KvCache*>& caches = st.caches;
  const int64_t count = static_cast<int64_t>(st.tokens.size());
  int64_t max_pos = 0;
  for (int64_t p : positions) max_pos = std::max(max_pos, p);
  const int64_t dim = c_.dim, kv_dim = c_.kv_heads * c_.head_dim, hd = c_.head_dim;
  const int64_t group = c_.heads / c_.kv_heads;
  const auto n = static_cast<size_t>(count * dim);
  float* x = st.x.get(n);
  float* xn = st.xn.get(n);
  float* q = st.q.get(n);
  float* att_out = st.att_out.get(n);
  float* o = st.o.get(n);
  float* k = st.k.get(static_cast<size_t>(count * kv_dim));
  float* v = st.v.get(static_cast<size_t>(count * kv_dim));
  float* gate = st.gate.get(static_cast<size_t>(count * c_.ffn));
  float* up = st.up.get(static_cast<size_t>(count * c_.ffn));
  for (int64_t t = 0; t < count; ++t) kernels::dequantize_row(embed_, st.tokens[t], x + t * dim);
  float* angles = st.angles.get(static_cast<size_t>(count * hd));
  for (int64_t t = 0; t < count; ++t) rope_angles(hd, positions[t], c_.rope_base, angles + t * hd);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // Attention jobs: one per (token, KV head), handed out a few at a time;
  // with the tiled kernel one per (tile of up to kAttentionTile consecutive
  // tokens of a chunk, KV head).
  constexpr int64_t kAttentionTile = 8;
  const bool tiled = kernels::attention_rows_available(hd);
  st.tiles.clear();
  if (tiled) {
    int64_t t = 0;
    for (const auto& ch : chunks) {
      for (int64_t i = 0; i < ch.count; i += kAttentionTile) st.tiles.emplace_back(t + i, std::min(kAttentionTile, ch.count - i));
      t += ch.count;
    }
  }
  const int64_t jobs = (tiled ? static_cast<int64_t>(st.tiles.size()) : count) * c_.kv_heads;
  const int64_t grain = std::max<int64_t>(1, jobs / (4 * pool.size()));
  // Each compute thread's attention scratch: its KV runs and scores.
  const auto score_floats = tiled ? kernels::attention_rows_scratch(kAttentionTile * group, max_pos + 1, hd)
                                  : static_cast<size_t>(group * (max_pos + 1));
  float* scores = st.scores.get(score_floats * static_cast<size_t>(pool.size()));
  st.runs.resize(static_cast<size_t>(pool.size()));
  st.tile_rows.resize(static_cast<size_t>(pool.size()));

  for (int64_t l = 0; l < c_.layers; ++l) {
    const Layer& L = layers_[static_cast<size_t>(l)];
    for (int64_t t = 0; t < count; ++t) rms_norm(x + t * dim, L.attn_norm, c_.eps, xn + t * dim, dim);
    kernels::matmul(pool, L.wq, xn, q, count);
    kernels::matmul(pool, L.wk, xn, k, count);
    kernels::matmul(pool, L.wv, xn, v, count);
    for (int64_t t = 0; t < count; ++t) {
      if (c_.qkv_bias) {
        for (int64_t i = 0; i < dim; ++i) q[t * dim + i] += L.bq[i];
        for (int64_t i = 0; i < kv_dim; ++i) {
          k[t * kv_dim + i] += L.bk[i];
          v[t * kv_dim + i] += L.bv[i];
        }
      }
      rope(q + t * dim, c_.heads, hd, angles + t * hd, c_.rope_halves);
      rope(k + t * kv_dim, c_.kv_heads, hd, angles + t * hd, c_.rope_halves);
      std::copy_n(k + t * kv_dim, kv_dim, caches[t]->k(l, positions[t]));
      std::copy_n(v + t * kv_dim, kv_dim, caches[t]->v(l, positions[t]));
    }
    // Causal attention over the cache: the query heads that share a KV head
    // together, the cache read a block at a time.
    pool.parallel_chunks(jobs, grain, [&](int64_t begin, int64_t end, int worker) {
      std::vector<kernels::KvRun>& runs = st.runs[static_cast<size_t>(worker)];
      float* s = scores + static_cast<size_t>(worker) * score_floats;
      for (int64_t job = begin; job < end; ++job) {
        const int64_t kvh = job % c_.kv_heads, h0 = kvh * group;
        // The tile's tokens (or the one token): consecutive positions of one
        // sequence, the last one the furthest.
        const auto [t0, n] = tiled ? st.tiles[static_cast<size_t>(job / c_.kv_heads)] : std::pair{job / c_.kv_heads, int64_t{1}};
        const int64_t last = positions[t0 + n - 1];
        KvCache& cache = *caches[t0];
        runs.clear();
        for (int64_t p = 0; p <= last;) {
          const int64_t len = std::min(cache.contiguous(p), last + 1 - p);
          runs.push_back({cache.k(l, p) + kvh * hd, cache.v(l, p) + kvh * hd, len});
          p += len;
        }
        if (!tiled) {
          kernels::attention(q + t0 * dim + h0 * hd, group, hd, runs.data(), runs.size(), kv_dim, scale, s,
                             att_out + t0 * dim + h0 * hd);
          continue;
        }
        auto& rows = st.tile_rows[static_cast<size_t>(worker)];
        rows.q.clear();
        rows.out.clear();
        rows.pos.clear();
        for (int64_t t = t0; t < t0 + n; ++t) {
          for (int64_t h = h0; h < h0 + group; ++h) {
            rows.q.push_back(q + t * dim + h * hd);
            rows.out.push_back(att_out + t * dim + h * hd);
            rows.pos.push_back(positions[t]);
          }
        }
        kernels::attention_rows(rows.q.data(), rows.out.data(), rows.pos.data(), n * group, hd, runs.data(), runs.size(),
                                kv_dim, scale, s);
      }
    });
    kernels::matmul(pool, L.wo, att_out, o, count);
    for (size_t i = 0; i < n; ++i) x[i] += o[i];
    // SwiGLU feed-forward.
    for (int64_t t = 0; t < count; ++t) rms_norm(x + t * dim, L.ffn_norm, c_.eps, xn + t * dim, dim);
    kernels::matmul(pool, L.gate, xn, gate, count);
    kernels::matmul(pool, L.up, xn, up, count);
    for (int64_t t = 0; t < count; ++t) kernels::silu_mul(gate + t * c_.ffn, up + t * c_.ffn, c_.ffn);
    kernels::matmul(pool, L.down, gate, o, count);
    for (size_t i = 0; i < n; ++i) x[i] += o[i];
  }
  // Logits for the last token of each chunk that wants them.
  size_t wanted = 0;
  for (const auto& ch : chunks) wanted += ch.logits != nullptr;
  if (wanted == 0) return;
  float* rows = st.rows.get(wanted * static_cast<size_t>(dim));
  int64_t end = 0, row = 0;
  for (const auto& ch : chunks) {
    end += ch.count;
    if (ch.logits) rms_norm(x + (end - 1) * dim, output_norm_, c_.eps, rows + (row++) * dim, dim);
  }
  float* logits = st.logits.get(wanted * static_cast<size_t>(c_.vocab));
  kernels::matmul(pool, output_, rows, logits, static_cast<int64_t>(wanted));
  row = 0;
  for (const auto& ch : chunks) {
    if (ch.logits) std::copy_n(logits + (row++) * c_.vocab, c_.vocab, ch.logits);
  }
}

}  // namespace sluice
