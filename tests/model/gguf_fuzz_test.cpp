// Mutated GGUF files: whatever the bytes, the reader either accepts a file whose every
// tensor lies inside it, or refuses it with an error naming the file and a byte. It
// never crashes, hangs or allocates more than the file could justify (run this under
// -fsanitize=address,undefined to see the "never crashes" part enforced).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "clusterd/model/gguf.h"
#include "support/shared_fixtures.h"

namespace clusterd {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> fuzz_seed_model() {
  std::mt19937 rng(7);
  auto noise = [&](size_t n) {
    std::vector<uint8_t> out(n);
    for (uint8_t& b : out) b = static_cast<uint8_t>(rng());
    return out;
  };
  GgufWriter w;
  w.set("general.architecture", GgufValue::str("llama"));
  w.set("general.alignment", GgufValue::u32(32));
  w.set("llama.block_count", GgufValue::u32(1));
  w.set("llama.rope.freq_base", GgufValue::f32(10000.0f));
  w.set("tokenizer.ggml.tokens",
        GgufValue::array(GgufValueType::kString, {GgufValue::str("<s>"), GgufValue::str(""), GgufValue::str("ab")}));
  w.set("tokenizer.ggml.scores", GgufValue::array(GgufValueType::kFloat32, {GgufValue::f32(0), GgufValue::f32(-1)}));
  w.set("test.nested",
        GgufValue::array(GgufValueType::kArray, {GgufValue::array(GgufValueType::kUint64, {GgufValue::u64(1)}),
                                                 GgufValue::array(GgufValueType::kInt8, {})}));
  EXPECT_TRUE(w.add_tensor("token_embd.weight", TensorType::kQ8_0, {32, 2}, noise(68)).is_ok());
  EXPECT_TRUE(w.add_tensor("blk.0.attn_q.weight", TensorType::kQ4_K, {256}, noise(144)).is_ok());
  EXPECT_TRUE(w.add_tensor("output_norm.weight", TensorType::kF32, {4}, noise(16)).is_ok());
  return w.to_bytes();
}

// One random change of the kinds that real damage and real attacks produce.
void mutate(std::vector<uint8_t>* bytes, std::mt19937_64* rng) {
  auto pick = [&](uint64_t n) { return n == 0 ? 0 : (*rng)() % n; };
  std::vector<uint8_t>& b = *bytes;
  switch (pick(5)) {
    case 0: {  // overwrite a few bytes
      for (uint64_t i = 0, n = 1 + pick(8); i < n && !b.empty(); ++i)
        b[pick(b.size())] = static_cast<uint8_t>((*rng)());
      break;
    }
    case 1:  // truncate
      b.resize(pick(b.size()));
      break;
    case 2: {  // duplicate a range somewhere else
      if (b.empty()) break;
      const size_t from = pick(b.size());
      const size_t length = 1 + pick(std::min<size_t>(64, b.size() - from));
      std::vector<uint8_t> copy(b.begin() + from, b.begin() + from + length);
      b.insert(b.begin() + pick(b.size() + 1), copy.begin(), copy.end());
      break;
    }
    case 3: {  // remove a range
      if (b.empty()) break;
      const size_t from = pick(b.size());
      b.erase(b.begin() + from, b.begin() + from + 1 + pick(std::min<size_t>(64, b.size() - from)));
      break;
    }
    case 4: {  // plant a count or length that lies
      const uint64_t values[] = {0, 1, 5, 0xff, 0xffffffffu, 1ull << 31, 1ull << 32, 1ull << 50, 1ull << 62, ~0ull};
      const uint64_t v = values[pick(std::size(values))];
      if (b.size() < 8) break;
      std::memcpy(b.data() + pick(b.size() - 7), &v, pick(2) == 0 ? 8 : 4);
      break;
    }
  }
}

// Parses `bytes` and checks the contract either way; returns whether it was accepted.
bool parse_and_check(const std::vector<uint8_t>& bytes, const std::string& name) {
  auto file = GgufFile::parse(bytes, name);
  if (!file.is_ok()) {
    const std::string& m = file.status().message();
    EXPECT_EQ(m.rfind(name + ": ", 0), 0u) << m;
    EXPECT_NE(m.find("byte"), std::string::npos) << m;
    return false;
  }
  const GgufFile& f = **file;
  EXPECT_TRUE(f.version() == 2 || f.version() == 3);
  uint64_t checksum = 0;
  for (const GgufTensorInfo& t : f.tensors()) {
    std::span<const uint8_t> data = f.tensor_data(t);
    EXPECT_EQ(data.size(), t.size) << t.name;
    EXPECT_EQ(t.offset % f.alignment(), 0u) << t.name;
    for (uint8_t x : data) checksum += x;  // touches every byte, so ASan sees any overrun
    EXPECT_EQ(f.find_tensor(t.name), &t);
  }
  for (const auto& [key, value] : f.metadata()) {
    (void)value.as_int();
    (void)value.as_float();
    if (const auto* items = value.as_array()) checksum += items->size();
  }
  (void)checksum;
  return true;
}

TEST(GgufFuzz, ThousandMutatedCopiesNeverCrash) {
  const std::vector<uint8_t> seed = fuzz_seed_model();
  ASSERT_TRUE(parse_and_check(seed, "fuzz.gguf"));
  std::mt19937_64 rng(0x6767756623);
  int accepted = 0;
  int refused = 0;
  for (int i = 0; i < 1000; ++i) {
    std::vector<uint8_t> copy = seed;
    for (uint64_t m = 0, n = 1 + rng() % 3; m < n; ++m) mutate(&copy, &rng);
    // An exact-size heap copy, so that a read past the end is a read past the buffer.
    std::vector<uint8_t> exact(copy.begin(), copy.end());
    exact.shrink_to_fit();
    (parse_and_check(exact, "fuzz.gguf") ? accepted : refused)++;
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(accepted, 0);  // some mutations land in tensor data or padding
  RecordProperty("accepted", accepted);
  RecordProperty("refused", refused);
}

TEST(GgufFuzz, MutatedHeadersOfARealModelNeverCrash) {
  fs::path path;
  if (auto shared = clusterd::testing::find_shared_dir()) path = *shared / "models" / "stories260K.gguf";
  if (path.empty()) GTEST_SKIP() << "../shared/models was not found; the fixture models are not here";
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> model((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto original = GgufFile::parse(model, path.string());
  ASSERT_TRUE(original.is_ok()) << original.status().message();
  // Only the header is mutated (the weights would be accepted as they are).
  const size_t header = (*original)->data_offset();
  const std::vector<uint8_t> head(model.begin(), model.begin() + header);
  std::mt19937_64 rng(42);
  for (int i = 0; i < 100; ++i) {
    std::vector<uint8_t> copy = head;
    mutate(&copy, &rng);
    copy.insert(copy.end(), model.begin() + header, model.end());
    parse_and_check(copy, "stories260K.gguf");
  }
}

}  // namespace
}  // namespace clusterd
