// Blocks written by llama.cpp: the fixture models tiny-llama-gqa.<type>.gguf hold the
// same random weights as tiny-llama-gqa.f32.gguf, quantized by llama.cpp. Dequantizing
// its blocks must give back the f32 weights within the format's error (a layout mistake
// gives errors near 100%), and for q8_0/q4_0, whose rules are fixed, our quantizer must
// write the very same bytes. Reads the files with a minimal GGUF parser of its own, so
// that this checks the block layouts and nothing else.
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

namespace clusterd {
namespace {

namespace fs = std::filesystem;

// The test models live in X/shared/models next to the repository X/main.
std::optional<fs::path> find_shared_models() {
  std::vector<fs::path> bases = {fs::current_path()};
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) bases.push_back(exe.parent_path());
  for (const fs::path& base : bases) {
    for (const char* up :
         {"../shared/models", "../../shared/models", "../../../shared/models", "../../../../shared/models"}) {
      if (fs::is_directory(base / up, ec)) return fs::canonical(base / up, ec);
    }
  }
  return std::nullopt;
}

struct MiniTensor {
  TensorType type;
  int64_t n_elements;
  const uint8_t* data;
};

// Just enough GGUF (v2/v3) to find tensors: skips every metadata value but alignment.
class MiniGguf {
 public:
  bool load(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (bytes_.size() < 24 || std::memcmp(bytes_.data(), "GGUF", 4) != 0) return false;
    pos_ = 8;
    const uint64_t n_tensors = u64();
    const uint64_t n_kv = u64();
    uint64_t alignment = 32;
    for (uint64_t i = 0; i < n_kv && ok_; ++i) {
      const std::string key = str();
      const uint32_t type = u32();
      if (key == "general.alignment" && type == 4) {
        alignment = u32();
      } else {
        skip_value(type);
      }
    }
    struct Info {
      std::string name;
      uint32_t type;
      int64_t n;
      uint64_t offset;
    };
    std::vector<Info> infos;
    for (uint64_t i = 0; i < n_tensors && ok_; ++i) {
      Info info{str(), 0, 1, 0};
      const uint32_t n_dims = u32();
      for (uint32_t d = 0; d < n_dims && ok_; ++d) info.n *= static_cast<int64_t>(u64());
      info.type = u32();
      info.offset = u64();
      infos.push_back(info);
    }
    const uint64_t data_start = (pos_ + alignment - 1) / alignment * alignment;
    for (const Info& info : infos) {
      tensors_[info.name] = {static_cast<TensorType>(info.type), info.n, bytes_.data() + data_start + info.offset};
    }
    return ok_ && data_start <= bytes_.size();
  }

  const std::map<std::string, MiniTensor>& tensors() const { return tensors_; }

 private:
  uint64_t take(size_t n) {
    uint64_t v = 0;
    if (pos_ + n > bytes_.size()) {
      ok_ = false;
      return 0;
    }
    std::memcpy(&v, bytes_.data() + pos_, n);  // little-endian host, as GGUF
    pos_ += n;
    return v;
  }
  uint32_t u32() { return static_cast<uint32_t>(take(4)); }
  uint64_t u64() { return take(8); }
  std::string str() {
    const uint64_t n = u64();
    if (!ok_ || pos_ + n > bytes_.size()) {
      ok_ = false;
      return {};
    }
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  void skip_value(uint32_t type) {
    static constexpr int kSize[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == 8) {
      str();
    } else if (type == 9) {
      const uint32_t element_type = u32();
      const uint64_t count = u64();
      for (uint64_t i = 0; i < count && ok_; ++i) skip_value(element_type);
    } else if (type < 13) {
      take(kSize[type]);
    } else {
      ok_ = false;
    }
  }

  std::vector<uint8_t> bytes_;
  size_t pos_ = 0;
  bool ok_ = true;
  std::map<std::string, MiniTensor> tensors_;
};

class LlamaCppBlocks : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto dir = find_shared_models();
    if (!dir) GTEST_SKIP() << "../shared/models was not found; the fixture models are not here";
    dir_ = *dir;
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
    MiniGguf quantized;
    EXPECT_TRUE(quantized.load(dir_ / file)) << file;
    Comparison c;
    double llama_err2 = 0, our_err2 = 0, ref2 = 0;
    for (const auto& [name, t] : quantized.tensors()) {
      if (t.type == TensorType::kF32) continue;
      const auto it = f32_.tensors().find(name);
      if (it == f32_.tensors().end() || it->second.n_elements != t.n_elements) {
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
  MiniGguf f32_;
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
