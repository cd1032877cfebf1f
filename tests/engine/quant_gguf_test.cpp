// Blocks written by llama.cpp: the fixture models tiny-llama-gqa.<type>.gguf hold the
// same random weights as tiny-llama-gqa.f32.gguf, quantized by llama.cpp. Dequantizing
// its blocks must give back the f32 weights within the format's error (a layout mistake
// gives errors near 100%), and for q8_0/q4_0, whose rules are fixed, our quantizer must
// write the very same bytes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "clusterd/engine/quant.h"
#include "clusterd/model/gguf.h"
#include "support/shared_fixtures.h"

namespace clusterd {
namespace {

namespace fs = std::filesystem;

// The tensors of a fixture file by name, read through the project's GGUF reader.
class FixtureTensors {
 public:
  bool load(const fs::path& path) {
    auto file = GgufFile::open(path);
    if (!file.is_ok()) return false;
    file_ = std::move(*file);
    return true;
  }
  struct Tensor {
    TensorType type;
    int64_t n_elements;
    const uint8_t* data;
  };
  std::map<std::string, Tensor> tensors() const {
    std::map<std::string, Tensor> out;
    for (const auto& t : file_->tensors()) out[t.name] = {t.type, t.n_elements(), file_->tensor_data(t).data()};
    return out;
  }

 private:
  std::unique_ptr<GgufFile> file_;
};

class LlamaCppBlocks : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto shared = testing::find_shared_dir();
    if (!shared) GTEST_SKIP() << "../shared/models was not found; the fixture models are not here";
    dir_ = *shared / "models";
    ASSERT_TRUE(f32_.load(dir_ / "tiny-llama-gqa.f32.gguf")) << dir_;
  }

  // For every quantized tensor of `file`: llama.cpp's error and ours (both relative RMS
  // against the f32 weights, over the whole file), and how many of its blocks our
  // quantizer reproduces byte for byte.
  struct Comparison {
    double llama_error = 0;
    double our_error = 0;
    int64_t blocks = 0;
    int64_t identical_blocks = 0;
    int tensors = 0;
  };
  Comparison compare(const std::string& file) {
    FixtureTensors quantized;
    EXPECT_TRUE(quantized.load(dir_ / file)) << file;
    Comparison c;
    double llama_err2 = 0, our_err2 = 0, ref2 = 0;
    const auto f32_tensors = f32_.tensors();
    for (const auto& [name, t] : quantized.tensors()) {
      if (t.type == TensorType::kF32) continue;
      const auto it = f32_tensors.find(name);
      if (it == f32_tensors.end() || it->second.n_elements != t.n_elements) {
        ADD_FAILURE() << file << ": tensor " << name << " has no f32 twin";
        continue;
      }
      EXPECT_TRUE(quant_type_supported(t.type)) << file << ": " << name;
      const int64_t n = t.n_elements;
      std::vector<float> want(n), theirs(n), ours(n);
      std::memcpy(want.data(), it->second.data, n * sizeof(float));
      dequantize_row(t.type, t.data, theirs.data(), n);
      const int block_size = quant_block_size(t.type), type_size = quant_type_size(t.type);
      std::vector<uint8_t> requantized(n / block_size * type_size);
      EXPECT_TRUE(quantize_row(t.type, want.data(), requantized.data(), n).is_ok());
      dequantize_row(t.type, requantized.data(), ours.data(), n);
      for (int64_t b = 0; b < n / block_size; ++b) {
        c.identical_blocks += std::memcmp(requantized.data() + b * type_size, t.data + b * type_size, type_size) == 0;
      }
      c.blocks += n / block_size;
      for (int64_t i = 0; i < n; ++i) {
        llama_err2 += (double{theirs[i]} - want[i]) * (double{theirs[i]} - want[i]);
        our_err2 += (double{ours[i]} - want[i]) * (double{ours[i]} - want[i]);
        ref2 += double{want[i]} * want[i];
      }
      ++c.tensors;
    }
    c.llama_error = std::sqrt(llama_err2 / ref2);
    c.our_error = std::sqrt(our_err2 / ref2);
    std::printf("[ measured ] %-26s %2d tensors: llama.cpp's blocks %.3f%%, ours %.3f%%, %lld/%lld blocks identical\n",
                file.c_str(), c.tensors, 100 * c.llama_error, 100 * c.our_error,
                static_cast<long long>(c.identical_blocks), static_cast<long long>(c.blocks));
    return c;
  }

  fs::path dir_;
  FixtureTensors f32_;
};

TEST_F(LlamaCppBlocks, Q8_0DequantizesAndRequantizesIdentically) {
  const Comparison c = compare("tiny-llama-gqa.q8_0.gguf");
  EXPECT_EQ(c.tensors, 30);
  EXPECT_LT(c.llama_error, 0.007);
  EXPECT_EQ(c.identical_blocks, c.blocks);
}

TEST_F(LlamaCppBlocks, Q4_0DequantizesAndRequantizesIdentically) {
  const Comparison c = compare("tiny-llama-gqa.q4_0.gguf");
  EXPECT_EQ(c.tensors, 30);
  EXPECT_LT(c.llama_error, 0.11);
  EXPECT_EQ(c.identical_blocks, c.blocks);
}

TEST_F(LlamaCppBlocks, Q4_KDequantizesWithinTheFormatsError) {
  const Comparison c = compare("tiny-llama-gqa.q4_k.gguf");
  EXPECT_EQ(c.tensors, 30);
  EXPECT_LT(c.llama_error, 0.09);
  EXPECT_LT(c.our_error, c.llama_error * 1.05);  // our reference quantizer is no worse
}

TEST_F(LlamaCppBlocks, Q5_KDequantizesWithinTheFormatsError) {
  const Comparison c = compare("tiny-llama-gqa.q5_k.gguf");
  EXPECT_EQ(c.tensors, 30);
  EXPECT_LT(c.llama_error, 0.047);
  EXPECT_LT(c.our_error, c.llama_error * 1.05);
}

TEST_F(LlamaCppBlocks, Q6_KDequantizesWithinTheFormatsError) {
  const Comparison c = compare("tiny-llama-gqa.q6_k.gguf");
  EXPECT_EQ(c.tensors, 30);
  EXPECT_LT(c.llama_error, 0.023);
  EXPECT_LT(c.our_error, c.llama_error * 1.05);
}

TEST_F(LlamaCppBlocks, Q4_K_MMixDequantizesWithinTheFormatsError) {
  const Comparison c = compare("tiny-llama-gqa.q4_k_m.gguf");
  EXPECT_EQ(c.tensors, 30);
  EXPECT_LT(c.llama_error, 0.09);
}

}  // namespace
}  // namespace clusterd
