#include "gateway/engine/local/cuda/step_plan.hpp"

#include <algorithm>
#include <cstring>

#include "gateway/engine/local/kv_pool.hpp"

namespace sluice::cuda {

int decode_bucket(int n, int max_batch) {
  for (int b : decode_buckets(max_batch)) {
    if (b >= n) return b;
  }
  return 0;
}

std::vector<int> decode_buckets(int max_batch) {
  std::vector<int> out;
  for (int b = 1; b < max_batch; b *= 2) out.push_back(b);
  out.push_back(std::max(1, max_batch));
  return out;
}

StepLayout::StepLayout(int tokens, int seqs, int blocks, int recent_ints)
    : max_tokens(tokens), max_seqs(seqs), max_blocks(blocks), max_recent(recent_ints) {
  size_t at = 0;
  auto take = [&](size_t n) {
    const size_t offset = at;
    at += (n + 15) / 16 * 16;
    return offset;
  };
  header = take(4);
  token = take(static_cast<size_t>(max_tokens));
  pos = take(static_cast<size_t>(max_tokens));
  seq_of = take(static_cast<size_t>(max_tokens));
  table = take(static_cast<size_t>(max_seqs) * static_cast<size_t>(max_blocks));
  row_token = take(static_cast<size_t>(max_seqs));
  row_k = take(static_cast<size_t>(max_seqs));
  row_penalty = take(static_cast<size_t>(max_seqs));  // float bits
  row_recent_off = take(static_cast<size_t>(max_seqs));
  row_recent_len = take(static_cast<size_t>(max_seqs));
  recent = take(static_cast<size_t>(max_recent));
  ints = at;
}

int candidates_for(const SamplingParams& p) {
  if (p.temperature <= 0) return 1;
  if (p.top_k <= 0) return kMaxCandidates;
  return std::min(p.top_k, kMaxCandidates);
}

bool build_step(std::span<const StepSeq> seqs, const StepLayout& L, int bucket, int32_t scratch_block,
                StepImage& out, std::string& error) {
  out.ints.assign(L.ints, 0);
  out.row_seq.clear();
  int32_t* v = out.ints.data();
  int tokens = 0, decode = 0, rows = 0, recent = 0;
  bool decoding = true;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const StepSeq& s = seqs[i];
    if (static_cast<int>(i) >= L.max_seqs) {
      error = "the step has more sequences than the backend's max_batch";
      return false;
    }
    if (tokens + s.count > L.max_tokens) {
      error = "the step has more tokens than the backend's max_batch_tokens";
      return false;
    }
    if (s.table_blocks > L.max_blocks || KvBlocks::blocks_for(s.pos0 + s.count) > s.table_blocks) {
      error = "a sequence's block table does not hold its positions";
      return false;
    }
    // Decoding sequences (one token, sampled) come first: the tokens before
    // the first prompt chunk take the batch-invariant decode kernels.
    if (!(s.count == 1 && s.sampler != nullptr)) decoding = false;
    if (decoding) ++decode;
    std::memcpy(v + L.table + i * static_cast<size_t>(L.max_blocks), s.table,
                static_cast<size_t>(s.table_blocks) * sizeof(int32_t));
    for (int64_t t = 0; t < s.count; ++t) {
      v[L.token + tokens] = s.tokens[t];
      v[L.pos + tokens] = static_cast<int32_t>(s.pos0 + t);
      v[L.seq_of + tokens] = static_cast<int32_t>(i);
      ++tokens;
    }
    if (s.sampler) {
      const int n = static_cast<int>(s.recent.size());
      if (recent + n > L.max_recent) {
        error = "the step's repetition-penalty windows overflow the backend's buffer";
        return false;
      }
      v[L.row_token + rows] = tokens - 1;
      v[L.row_k + rows] = candidates_for(s.sampler->params());
      const float penalty = s.sampler->params().repetition_penalty;
      std::memcpy(v + L.row_penalty + rows, &penalty, sizeof(float));
      v[L.row_recent_off + rows] = recent;
      v[L.row_recent_len + rows] = penalty != 1.0f ? n : 0;
      if (penalty != 1.0f) std::copy(s.recent.begin(), s.recent.end(), v + L.recent + recent);
      if (penalty != 1.0f) recent += n;
      out.row_seq.push_back(static_cast<int>(i));
      ++rows;
    }
  }
  out.bucket = 0;
  if (bucket > 0) {
    // Only a step of decoding sequences alone replays a graph.
    if (decode != tokens || tokens > bucket || bucket > L.max_seqs) {
      error = "a graph bucket was asked for a step that is not decode-only within it";
      return false;
    }
    const float one = 1.0f;
    for (int i = tokens; i < bucket; ++i) {
      v[L.token + i] = 0;
      v[L.pos + i] = 0;
      v[L.seq_of + i] = i;
      v[L.table + static_cast<size_t>(i) * static_cast<size_t>(L.max_blocks)] = scratch_block;
      v[L.row_token + i] = i;
      v[L.row_k + i] = 1;
      std::memcpy(v + L.row_penalty + i, &one, sizeof(float));
      v[L.row_recent_off + i] = 0;
      v[L.row_recent_len + i] = 0;
      out.row_seq.push_back(-1);
    }
    tokens = decode = rows = bucket;
    out.bucket = bucket;
  }
  v[L.header + 0] = tokens;
  v[L.header + 1] = decode;
  v[L.header + 2] = rows;
  v[L.header + 3] = out.bucket;
  out.tokens = tokens;
  out.decode = decode;
  out.rows = rows;
  return true;
}

RepackedQ8 repack_q8_0(const kernels::Weight& w) {
  RepackedQ8 r;
  const int64_t blocks = w.cols / 32;
  r.quants.resize(static_cast<size_t>(w.rows * w.cols));
  r.scales.resize(static_cast<size_t>(w.rows * blocks));
  for (int64_t row = 0; row < w.rows; ++row) {
    const uint8_t* src = w.data + static_cast<size_t>(row) * w.row_bytes();
    for (int64_t b = 0; b < blocks; ++b) {
      const uint8_t* block = src + b * 34;
      uint16_t d;
      std::memcpy(&d, block, 2);
      r.scales[static_cast<size_t>(row * blocks + b)] = d;
      std::memcpy(r.quants.data() + row * w.cols + b * 32, block + 2, 32);
    }
  }
  return r;
}

namespace {
size_t align(size_t n) { return (n + 255) / 256 * 256; }
}  // namespace

void WeightPlan::add(std::string name, const kernels::Weight& w) {
  Placement p{std::move(name), w.type};
  const size_t values = static_cast<size_t>(w.rows * w.cols);
  p.offset = total;
  if (w.type == gguf::TensorType::kQ8_0) {
    p.bytes = values;
    p.scale_offset = align(p.offset + p.bytes);
    p.scale_bytes = values / 32 * 2;
    total = align(p.scale_offset + p.scale_bytes);
  } else {
    p.bytes = static_cast<size_t>(w.rows) * w.row_bytes();
    total = align(p.offset + p.bytes);
  }
  items.push_back(std::move(p));
}

void WeightPlan::add_floats(std::string name, size_t count) {
  Placement p{std::move(name), gguf::TensorType::kF32};
  p.offset = total;
  p.bytes = count * sizeof(float);
  total = align(p.offset + p.bytes);
  items.push_back(std::move(p));
}

WeightPlan plan_weights(const Model& model) {
  WeightPlan plan;
  plan.add("token_embd.weight", model.embedding());
  if (model.output().data != model.embedding().data) plan.add("output.weight", model.output());
  plan.add_floats("output_norm.weight", model.output_norm().size());
  for (size_t l = 0; l < model.layers().size(); ++l) {
    const Model::Layer& L = model.layers()[l];
    const std::string p = "blk." + std::to_string(l) + ".";
    plan.add(p + "attn_q.weight", L.wq);
    plan.add(p + "attn_k.weight", L.wk);
    plan.add(p + "attn_v.weight", L.wv);
    plan.add(p + "attn_output.weight", L.wo);
    plan.add(p + "ffn_gate.weight", L.gate);
    plan.add(p + "ffn_up.weight", L.up);
    plan.add(p + "ffn_down.weight", L.down);
    plan.add_floats(p + "attn_norm.weight", L.attn_norm.size());
    plan.add_floats(p + "ffn_norm.weight", L.ffn_norm.size());
    if (!L.bq.empty()) {
      plan.add_floats(p + "attn_q.bias", L.bq.size());
      plan.add_floats(p + "attn_k.bias", L.bk.size());
      plan.add_floats(p + "attn_v.bias", L.bv.size());
    }
  }
  return plan;
}

size_t kv_bytes(const ModelConfig& c, int64_t blocks) {
  return 2 * static_cast<size_t>(blocks) * static_cast<size_t>(c.layers) * kKvBlockTokens *
         static_cast<size_t>(c.kv_heads * c.head_dim) * sizeof(float);
}

}  // namespace sluice::cuda
