#include "gateway/engine/local/gguf.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <random>

#include "tests/support/gguf_writer.hpp"

namespace sluice::gguf {
namespace {

using test::GgufWriter;

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

// A file with one key of every metadata type and one tensor of every type.
std::vector<uint8_t> sample() {
  GgufWriter w;
  w.kv("u8", 0, uint8_t{200});
  w.kv("i8", 1, int8_t{-100});
  w.kv("u16", 2, uint16_t{60000});
  w.kv("i16", 3, int16_t{-30000});
  w.kv("u32", 4, uint32_t{4000000000u});
  w.kv("i32", 5, int32_t{-2000000000});
  w.kv("f32", 6, 0.5f);
  w.kv("flag", 7, true);
  w.kv_string("general.name", "测试模型 🚀");
  w.kv("u64", 10, uint64_t{1} << 50);
  w.kv("i64", 11, int64_t{-(int64_t{1} << 50)});
  w.kv("f64", 12, 0.125);
  w.kv_array("scores", 6, std::vector<float>{-1.5f, 0, 2.25f});
  w.kv_array("types", 5, std::vector<int32_t>{1, 3, 6});
  w.kv_strings("tokens", {"<s>", "▁你好", "Ġworld", "\n", ""});
  // An array of arrays: two arrays of two uint8 each.
  std::vector<uint8_t> nested;
  GgufWriter::str(nested, "nested");
  GgufWriter::put(nested, uint32_t{9});
  GgufWriter::put(nested, uint32_t{9});
  GgufWriter::put(nested, uint64_t{2});
  for (int k = 0; k < 2; ++k) {
    GgufWriter::put(nested, uint32_t{0});
    GgufWriter::put(nested, uint64_t{2});
    GgufWriter::put(nested, uint8_t{7});
    GgufWriter::put(nested, uint8_t{8});
  }
  w.raw_meta(nested, 1);
  w.tensor("a.f32", {4, 2}, 0, f32_bytes({1, 2, 3, 4, 5, 6, 7, 8}));
  w.tensor("b.f16", {3}, 1, {0x00, 0x3c, 0x00, 0xc0, 0x00, 0x00});  // 1, -2, 0
  w.tensor("c.bf16", {2}, 30, {0x80, 0x3f, 0x00, 0x40});            // 1, 2
  std::vector<uint8_t> q8(34 * 2, 1);
  w.tensor("d.q8_0", {32, 2}, 8, q8);
  return w.bytes();
}

TEST(Gguf, ReadsEveryMetadataTypeAndTensorType) {
  const auto bytes = sample();
  std::string error;
  auto f = File::parse(bytes.data(), bytes.size(), error);
  ASSERT_TRUE(f) << error;
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->get_uint("u8"), 200u);
  EXPECT_EQ(f->find("i8")->i, -100);
  EXPECT_EQ(f->get_uint("u16"), 60000u);
  EXPECT_EQ(f->find("i16")->i, -30000);
  EXPECT_EQ(f->get_uint("u32"), 4000000000u);
  EXPECT_EQ(f->find("i32")->i, -2000000000);
  EXPECT_EQ(f->get_float("f32"), 0.5);
  EXPECT_TRUE(f->find("flag")->b);
  EXPECT_EQ(f->get_string("general.name"), "测试模型 🚀");
  EXPECT_EQ(f->get_uint("u64"), uint64_t{1} << 50);
  EXPECT_EQ(f->find("i64")->i, -(int64_t{1} << 50));
  EXPECT_EQ(f->get_float("f64"), 0.125);
  EXPECT_EQ(f->get_uint("i8"), std::nullopt);  // negative: not an unsigned value
  EXPECT_EQ(f->get_string("u8"), std::nullopt);
  EXPECT_EQ(f->find("scores")->numbers, (std::vector<double>{-1.5, 0, 2.25}));
  EXPECT_EQ(f->find("types")->numbers, (std::vector<double>{1, 3, 6}));
  const auto& tokens = f->find("tokens")->strings;
  ASSERT_EQ(tokens.size(), 5u);
  EXPECT_EQ(tokens[1], "▁你好");
  EXPECT_EQ(tokens[4], "");
  EXPECT_EQ(f->find("nested")->count, 2u);
  EXPECT_EQ(f->find("nested")->elem, ValueType::kArray);

  ASSERT_EQ(f->tensors().size(), 4u);
  const TensorInfo* a = f->tensor("a.f32");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->dims, (std::vector<uint64_t>{4, 2}));
  EXPECT_EQ(a->bytes, 32u);
  float x[8];
  std::memcpy(x, f->data(*a), 32);
  EXPECT_EQ(x[7], 8);
  EXPECT_EQ(f->tensor("b.f16")->bytes, 6u);
  EXPECT_EQ(f->tensor("c.bf16")->type, TensorType::kBF16);
  EXPECT_EQ(f->tensor("d.q8_0")->bytes, 68u);
  for (const auto& t : f->tensors()) EXPECT_EQ(t.offset % 32, 0u) << t.name;
}

TEST(Gguf, EveryTruncationIsAnErrorNeverACrash) {
  const auto bytes = sample();
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    std::string error;
    EXPECT_FALSE(File::parse(cut.data(), cut.size(), error, "m.gguf")) << n;
    EXPECT_EQ(error.rfind("m.gguf: ", 0), 0u) << error;
    EXPECT_TRUE(error.find("truncated") != std::string::npos || error.find("not a GGUF") != std::string::npos ||
                error.find("corrupt header") != std::string::npos)
        << n << ": " << error;
  }
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
  std::string error;
  EXPECT_FALSE(File::parse(bytes.data(), bytes.size(), error));
  return error;
}

TEST(Gguf, CorruptFilesNameWhatIsWrong) {
  auto bytes = sample();
  auto bad = bytes;
  bad[0] = 'X';
  EXPECT_NE(parse_error(bad).find("not a GGUF file"), std::string::npos);
  bad = bytes;
  bad[4] = 4;
  EXPECT_NE(parse_error(bad).find("GGUF version 4 is not supported"), std::string::npos);
  bad = bytes;
  bad[16] = 0xff;  // kv count: absurd
  EXPECT_NE(parse_error(bad).find("corrupt header"), std::string::npos);
  {
    GgufWriter w;
    w.kv("weird", 13, uint32_t{1});
    EXPECT_NE(parse_error(w.bytes()).find("metadata \"weird\": unknown value type 13"), std::string::npos);
  }
  {
    GgufWriter w;
    w.kv("flag", 7, uint8_t{2});
    EXPECT_NE(parse_error(w.bytes()).find("a bool must be 0 or 1"), std::string::npos);
  }
  {
    GgufWriter w;
    w.kv("twice", 4, uint32_t{1});
    w.kv("twice", 4, uint32_t{2});
    EXPECT_NE(parse_error(w.bytes()).find("appears twice"), std::string::npos);
  }
  {
    GgufWriter w;
    w.kv("general.alignment", 4, uint32_t{3});
    EXPECT_NE(parse_error(w.bytes()).find("general.alignment must be a power of two (got 3)"), std::string::npos);
  }
  {
    GgufWriter w;
    w.tensor("q4", {32}, 2, std::vector<uint8_t>(18));
    EXPECT_NE(parse_error(w.bytes()).find("tensor \"q4\": tensor type 2 is not supported"), std::string::npos);
  }
  {
    GgufWriter w;
    w.tensor("rows", {16, 2}, 8, std::vector<uint8_t>(34));
    EXPECT_NE(parse_error(w.bytes()).find("do not fill Q8_0 blocks of 32"), std::string::npos);
  }
  {
    GgufWriter w;
    w.tensor("zero", {0}, 0, {});
    EXPECT_NE(parse_error(w.bytes()).find("dimension 0 is out of range"), std::string::npos);
  }
  {
    GgufWriter w;
    w.tensor("big", {4, 4}, 0, f32_bytes({1, 2, 3}));  // 12 bytes of 64
    EXPECT_NE(parse_error(w.bytes()).find("runs past the end of the file"), std::string::npos);
  }
}

TEST(Gguf, RandomCorruptionNeverCrashes) {
  const auto bytes = sample();
  std::mt19937 rng(7);
  size_t parsed = 0;
  for (int round = 0; round < 3000; ++round) {
    auto bad = bytes;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) bad[rng() % bad.size()] = static_cast<uint8_t>(rng());
    std::string error;
    if (File::parse(bad.data(), bad.size(), error)) ++parsed;
  }
  EXPECT_GT(parsed, 0u);  // flips in tensor data leave a valid file
}

TEST(Gguf, OpensAFileThroughMmapWithClearErrors) {
  const auto bytes = sample();
  const std::string path = "/tmp/sluice-gguf-" + std::to_string(getpid()) + ".gguf";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                               static_cast<std::streamsize>(bytes.size()));
  std::string error;
  auto f = File::open(path, error);
  ASSERT_TRUE(f) << error;
  EXPECT_EQ(f->size(), bytes.size());
  EXPECT_EQ(f->get_string("general.name"), "测试模型 🚀");
  unlink(path.c_str());
  EXPECT_FALSE(File::open(path, error));
  EXPECT_NE(error.find(path + ": cannot open: No such file or directory"), std::string::npos) << error;
}

}  // namespace
}  // namespace sluice::gguf
