// The CUDA backend's host side, which needs no GPU: graph buckets, the step
// image the kernels read, Q8_0 repacking, weight placement, the choice of
// device, and what the probe says on a machine without a GPU.
#include "gateway/engine/local/cuda/step_plan.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "gateway/engine/local/cuda/cuda_backend.hpp"
#include "gateway/engine/local/kv_pool.hpp"
#include "tests/support/random_model.hpp"

namespace sluice::cuda {
namespace {

TEST(CudaPlan, DecodeBucketsArePowersOfTwoUpToMaxBatch) {
  EXPECT_EQ(decode_buckets(16), (std::vector<int>{1, 2, 4, 8, 16}));
  EXPECT_EQ(decode_buckets(24), (std::vector<int>{1, 2, 4, 8, 16, 24}));
  EXPECT_EQ(decode_buckets(1), (std::vector<int>{1}));
  EXPECT_EQ(decode_bucket(1, 16), 1);
  EXPECT_EQ(decode_bucket(3, 16), 4);
  EXPECT_EQ(decode_bucket(9, 16), 16);
  EXPECT_EQ(decode_bucket(17, 24), 24);
  EXPECT_EQ(decode_bucket(17, 16), 0);  // no bucket: launched without a graph
}

TEST(CudaPlan, CandidatesFollowTheSamplingParameters) {
  SamplingParams p;
  p.temperature = 0;
  EXPECT_EQ(candidates_for(p), 1);
  p.temperature = 0.7f;
  p.top_k = 40;
  EXPECT_EQ(candidates_for(p), 40);
  p.top_k = 0;
  EXPECT_EQ(candidates_for(p), kMaxCandidates);
  p.top_k = 100000;
  EXPECT_EQ(candidates_for(p), kMaxCandidates);
}

struct Seqs {
  // Two decoding sequences, a last prompt chunk (sampled), a prompt chunk
  // that is not the last.
  Seqs() {
    greedy.temperature = 0;
    sampled.top_k = 40;
    sampled.repetition_penalty = 1.3f;
    s_greedy = std::make_unique<Sampler>(greedy);
    s_sampled = std::make_unique<Sampler>(sampled);
    step = {
        {&t0, 1, 20, table_a.data(), 2, s_greedy.get(), {}, &out[0]},
        {&t1, 1, 5, table_b.data(), 1, s_sampled.get(), recent, &out[1]},
        {prompt.data(), 3, 0, table_c.data(), 1, s_greedy.get(), {}, &out[2]},
        {prompt.data(), 2, 16, table_d.data(), 2, nullptr, {}, nullptr},
    };
  }
  SamplingParams greedy, sampled;
  std::unique_ptr<Sampler> s_greedy, s_sampled;
  int32_t t0 = 11, t1 = 12;
  std::vector<int32_t> prompt{7, 8, 9};
  std::vector<int32_t> table_a{4, 9}, table_b{3}, table_c{0}, table_d{1, 2};
  std::vector<int32_t> recent{5, 6, 5};
  int32_t out[3] = {};
  std::vector<StepSeq> step;
};

TEST(CudaPlan, AStepImageHoldsTokensTablesAndSampledRows) {
  Seqs s;
  const StepLayout L(16, 4, 8, 64);
  StepImage img;
  std::string error;
  ASSERT_TRUE(build_step(s.step, L, 0, 99, img, error)) << error;
  EXPECT_EQ(img.tokens, 7);
  EXPECT_EQ(img.decode, 2);  // the two decoding sequences, first
  EXPECT_EQ(img.rows, 3);
  EXPECT_EQ(img.row_seq, (std::vector<int>{0, 1, 2}));
  const int32_t* v = img.ints.data();
  EXPECT_EQ(v[L.header], 7);
  EXPECT_EQ(v[L.header + 1], 2);
  EXPECT_EQ(v[L.header + 2], 3);
  const int32_t tokens[] = {11, 12, 7, 8, 9, 7, 8};
  const int32_t pos[] = {20, 5, 0, 1, 2, 16, 17};
  const int32_t seq[] = {0, 1, 2, 2, 2, 3, 3};
  for (int t = 0; t < 7; ++t) {
    EXPECT_EQ(v[L.token + t], tokens[t]) << t;
    EXPECT_EQ(v[L.pos + t], pos[t]) << t;
    EXPECT_EQ(v[L.seq_of + t], seq[t]) << t;
  }
  EXPECT_EQ(v[L.table + 0], 4);
  EXPECT_EQ(v[L.table + 1], 9);
  EXPECT_EQ(v[L.table + 8], 3);
  EXPECT_EQ(v[L.table + 3 * 8 + 1], 2);
  // Rows: the last token of each sampled chunk, greedy as 1 candidate.
  EXPECT_EQ(v[L.row_token + 0], 0);
  EXPECT_EQ(v[L.row_token + 1], 1);
  EXPECT_EQ(v[L.row_token + 2], 4);
  EXPECT_EQ(v[L.row_k + 0], 1);
  EXPECT_EQ(v[L.row_k + 1], 40);
  float penalty;
  std::memcpy(&penalty, &v[L.row_penalty + 1], 4);
  EXPECT_FLOAT_EQ(penalty, 1.3f);
  EXPECT_EQ(v[L.row_recent_len + 0], 0);  // no penalty: no window
  EXPECT_EQ(v[L.row_recent_len + 1], 3);
  EXPECT_EQ(v[L.recent + v[L.row_recent_off + 1] + 2], 5);
}

TEST(CudaPlan, ADecodeStepIsPaddedToItsBucketIntoTheScratchBlock) {
  Seqs s;
  s.step.resize(2);  // the decoding sequences alone
  const StepLayout L(16, 4, 8, 64);
  StepImage img;
  std::string error;
  ASSERT_TRUE(build_step(s.step, L, decode_bucket(3, 4), 99, img, error)) << error;
  ASSERT_TRUE(build_step(s.step, L, 4, 99, img, error)) << error;
  EXPECT_EQ(img.bucket, 4);
  EXPECT_EQ(img.tokens, 4);
  EXPECT_EQ(img.decode, 4);
  EXPECT_EQ(img.rows, 4);
  EXPECT_EQ(img.row_seq, (std::vector<int>{0, 1, -1, -1}));
  const int32_t* v = img.ints.data();
  for (int t = 2; t < 4; ++t) {
    EXPECT_EQ(v[L.token + t], 0);
    EXPECT_EQ(v[L.pos + t], 0);
    EXPECT_EQ(v[L.table + v[L.seq_of + t] * 8], 99) << "padding writes only the scratch block";
    EXPECT_EQ(v[L.row_k + t], 1);
    EXPECT_EQ(v[L.row_recent_len + t], 0);
  }
}

TEST(CudaPlan, StepsThatDoNotFitAreRefusedWithAReason) {
  Seqs s;
  StepImage img;
  std::string error;
  EXPECT_FALSE(build_step(s.step, StepLayout(4, 4, 8, 64), 0, 99, img, error));
  EXPECT_NE(error.find("max_batch_tokens"), std::string::npos) << error;
  EXPECT_FALSE(build_step(s.step, StepLayout(16, 2, 8, 64), 0, 99, img, error));
  EXPECT_NE(error.find("max_batch"), std::string::npos) << error;
  EXPECT_FALSE(build_step(s.step, StepLayout(16, 4, 1, 64), 0, 99, img, error));
  EXPECT_NE(error.find("block table"), std::string::npos) << error;
  EXPECT_FALSE(build_step(s.step, StepLayout(16, 4, 8, 2), 0, 99, img, error));
  EXPECT_NE(error.find("repetition-penalty"), std::string::npos) << error;
  EXPECT_FALSE(build_step(s.step, StepLayout(16, 4, 8, 64), 4, 99, img, error));
  EXPECT_NE(error.find("decode-only"), std::string::npos) << error;
  // A position past the table's blocks.
  s.step.resize(1);
  s.step[0].pos0 = 40;
  EXPECT_FALSE(build_step(s.step, StepLayout(16, 4, 8, 64), 0, 99, img, error));
}

TEST(CudaPlan, Q8_0RepackKeepsEveryValueAndScale) {
  const auto model = test::random_model({.arch = "llama", .type = gguf::TensorType::kQ8_0});
  ASSERT_TRUE(model);
  const kernels::Weight& w = model->layers()[0].gate;
  const RepackedQ8 r = repack_q8_0(w);
  ASSERT_EQ(r.quants.size(), static_cast<size_t>(w.rows * w.cols));
  ASSERT_EQ(r.scales.size(), static_cast<size_t>(w.rows * w.cols / 32));
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t i = 0; i < w.rows; ++i) {
    kernels::dequantize_row(w, i, row.data());
    for (int64_t c = 0; c < w.cols; ++c) {
      const float d = kernels::half_to_float(r.scales[static_cast<size_t>(i * w.cols / 32 + c / 32)]);
      ASSERT_EQ(static_cast<float>(r.quants[static_cast<size_t>(i * w.cols + c)]) * d, row[static_cast<size_t>(c)])
          << i << "," << c;
    }
  }
}

TEST(CudaPlan, EveryWeightIsPlacedAlignedAndApart) {
  for (auto type : {gguf::TensorType::kBF16, gguf::TensorType::kQ8_0, gguf::TensorType::kF16}) {
    const auto model = test::random_model({.type = type, .tied = false});
    ASSERT_TRUE(model);
    const WeightPlan plan = plan_weights(*model);
    // Embeddings, output, its norm; per layer 7 matrices, 2 norms, 3 biases.
    ASSERT_EQ(plan.items.size(), 3 + 12 * model->layers().size());
    size_t end = 0;
    for (const Placement& p : plan.items) {
      EXPECT_EQ(p.offset % 256, 0u) << p.name;
      EXPECT_GE(p.offset, end) << p.name << " overlaps the one before";
      end = p.offset + p.bytes;
      if (p.type == gguf::TensorType::kQ8_0) {
        EXPECT_EQ(p.scale_offset % 256, 0u) << p.name;
        EXPECT_GE(p.scale_offset, end) << p.name;
        EXPECT_EQ(p.scale_bytes * 16, p.bytes) << p.name << ": a half per 32 quants";
        end = p.scale_offset + p.scale_bytes;
      }
      EXPECT_LE(end, plan.total);
    }
    EXPECT_EQ(plan.items[1].name, "output.weight");
  }
  // Tied embeddings are uploaded once.
  const auto tied = test::random_model({});
  EXPECT_EQ(plan_weights(*tied).items[1].name, "output_norm.weight");
  EXPECT_EQ(kv_bytes(tied->config(), 3), 2u * 3 * 2 * kKvBlockTokens * 32 * 4);
}

TEST(CudaDevice, TheChoiceFollowsTheSettingAndWhatTheProbeFound) {
  Probe none;
  none.reason = "CUDA driver version is insufficient for CUDA runtime version";
  Probe gpu;
  gpu.available = true;
  gpu.name = "NVIDIA H200";
  gpu.major = 9;
  gpu.memory_bytes = size_t{141} << 30;

  EXPECT_EQ(choose_device("cpu", gpu).device, "cpu");
  EXPECT_TRUE(choose_device("cpu", gpu).log.empty());
  const DeviceChoice cuda_none = choose_device("cuda", none);
  EXPECT_TRUE(cuda_none.device.empty());
  EXPECT_NE(cuda_none.error.find("local.device = \"cuda\""), std::string::npos) << cuda_none.error;
  EXPECT_NE(cuda_none.error.find(none.reason), std::string::npos) << cuda_none.error;
  const DeviceChoice auto_none = choose_device("auto", none);
  EXPECT_EQ(auto_none.device, "cpu");
  EXPECT_TRUE(auto_none.error.empty());
  EXPECT_NE(auto_none.log.find("running on the CPU"), std::string::npos) << auto_none.log;
  EXPECT_NE(auto_none.log.find(none.reason), std::string::npos) << auto_none.log;
  for (const char* setting : {"cuda", "auto"}) {
    const DeviceChoice c = choose_device(setting, gpu);
    EXPECT_EQ(c.device, "cuda");
    EXPECT_NE(c.log.find("NVIDIA H200 (sm_90, 141.0 GiB)"), std::string::npos) << c.log;
  }
}

TEST(CudaDevice, WithoutAGpuTheProbeSaysWhyAndTheBackendDoesNotStart) {
  const Probe p = probe();
  if (p.available) GTEST_SKIP() << "this machine has a CUDA GPU (" << p.name << ")";
  EXPECT_FALSE(p.reason.empty());
  if (built_with_cuda()) {
    // The module loads (it is beside the test binary) and the runtime answers.
    EXPECT_EQ(p.reason.find("cannot be loaded"), std::string::npos) << p.reason;
  } else {
    EXPECT_NE(p.reason.find("no CUDA backend"), std::string::npos) << p.reason;
  }
  std::string error;
  EXPECT_EQ(make_cuda_backend(test::random_model({}), {}, error), nullptr);
  EXPECT_EQ(error, p.reason);
}

TEST(CudaDevice, AMissingOrForeignModuleIsNamedInTheReason) {
  if (!built_with_cuda()) GTEST_SKIP() << "a build without CUDA has no module to miss";
  const Probe missing = probe_module("/nonexistent/libsluice-cuda.so");
  EXPECT_FALSE(missing.available);
  EXPECT_NE(missing.reason.find("/nonexistent/libsluice-cuda.so does not exist"), std::string::npos) << missing.reason;
  // A shared object that is not the module (a test plugin).
  const std::string plugin = SLUICE_TEST_PLUGIN_DIR "/test_tools.so";
  const Probe foreign = probe_module(plugin);
  EXPECT_FALSE(foreign.available);
  EXPECT_NE(foreign.reason.find("is not a Sluice CUDA module"), std::string::npos) << foreign.reason;
}

}  // namespace
}  // namespace sluice::cuda
