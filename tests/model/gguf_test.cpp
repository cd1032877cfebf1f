// GGUF files: tensor type traits, writer -> reader round trips, one test per kind of
// corruption (each error names the key or tensor and a byte offset), and the real
// fixture models under ../shared/models.
#include "clusterd/model/gguf.h"
#include "support/shared_fixtures.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace clusterd {
namespace {

namespace fs = std::filesystem;

// Little-endian bytes for hand-made files the writer would refuse to produce.
class RawGguf {
 public:
  RawGguf& u32(uint32_t v) { return put(&v, 4); }
  RawGguf& u64(uint64_t v) { return put(&v, 8); }
  RawGguf& str(const std::string& s) {
    u64(s.size());
    return put(s.data(), s.size());
  }
  RawGguf& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    put("GGUF", 4);
    u32(version);
    u64(n_tensors);
    return u64(n_kv);
  }
  RawGguf& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(ne.size()));
    for (uint64_t n : ne) u64(n);
    return u32(type).u64(offset);
  }
  // Pads to 32 bytes and appends `n` bytes of tensor data.
  RawGguf& data(size_t n) {
    bytes_.resize((bytes_.size() + 31) / 32 * 32 + n, 0x5a);
    return *this;
  }
  std::vector<uint8_t> bytes() const { return bytes_; }

 private:
  RawGguf& put(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    bytes_.insert(bytes_.end(), b, b + n);
    return *this;
  }
  std::vector<uint8_t> bytes_;
};

// The parsed file points into `bytes`, so they must outlive it (no temporaries).
Result<std::unique_ptr<GgufFile>> parse_bytes(const std::vector<uint8_t>& bytes) {
  return GgufFile::parse(bytes, "x.gguf");
}
Result<std::unique_ptr<GgufFile>> parse_bytes(std::vector<uint8_t>&& bytes) = delete;

// Expects `bytes` to be refused with a message that names the file, every one of
// `needles` and a byte offset.
void expect_refused(const std::vector<uint8_t>& bytes, const std::vector<std::string>& needles) {
  auto file = parse_bytes(bytes);
  ASSERT_FALSE(file.is_ok()) << "accepted a corrupt file";
  const std::string& m = file.status().message();
  EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument) << m;
  EXPECT_EQ(m.rfind("x.gguf: ", 0), 0u) << m;
  EXPECT_NE(m.find("byte"), std::string::npos) << m;
  for (const std::string& needle : needles) EXPECT_NE(m.find(needle), std::string::npos) << m;
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (uint8_t& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

bool values_equal(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type || a.data.index() != b.data.index()) return false;
  if (const auto* x = std::get_if<double>(&a.data)) {
    const double y = std::get<double>(b.data);
    return *x == y || (std::isnan(*x) && std::isnan(y));
  }
  if (const auto* xs = a.as_array()) {
    const auto* ys = b.as_array();
    if (xs->size() != ys->size()) return false;
    for (size_t i = 0; i < xs->size(); ++i) {
      if (!values_equal((*xs)[i], (*ys)[i])) return false;
    }
    return true;
  }
  if (const auto* x = std::get_if<uint64_t>(&a.data)) return *x == std::get<uint64_t>(b.data);
  if (const auto* x = std::get_if<int64_t>(&a.data)) return *x == std::get<int64_t>(b.data);
  if (const auto* x = std::get_if<bool>(&a.data)) return *x == std::get<bool>(b.data);
  return *a.as_string() == *b.as_string();
}

GgufValue nested(int levels) {
  GgufValue v = GgufValue::array(GgufValueType::kInt16, {GgufValue::i16(-7)});
  for (int i = 1; i < levels; ++i) v = GgufValue::array(GgufValueType::kArray, {v});
  return v;
}

// ---------------------------------------------------------------------------------
// Tensor types

TEST(TensorType, TraitsMatchGgmlBlockGeometry) {
  struct Row {
    TensorType type;
    const char* name;
    uint32_t block, bytes;
    bool supported;
  };
  const Row rows[] = {
      {TensorType::kF32, "f32", 1, 4, true},        {TensorType::kF16, "f16", 1, 2, true},
      {TensorType::kBF16, "bf16", 1, 2, true},      {TensorType::kQ4_0, "q4_0", 32, 18, true},
      {TensorType::kQ4_1, "q4_1", 32, 20, false},   {TensorType::kQ5_0, "q5_0", 32, 22, false},
      {TensorType::kQ5_1, "q5_1", 32, 24, false},   {TensorType::kQ8_0, "q8_0", 32, 34, true},
      {TensorType::kQ8_1, "q8_1", 32, 36, false},   {TensorType::kQ2_K, "q2_K", 256, 84, false},
      {TensorType::kQ3_K, "q3_K", 256, 110, false}, {TensorType::kQ4_K, "q4_K", 256, 144, true},
      {TensorType::kQ5_K, "q5_K", 256, 176, true},  {TensorType::kQ6_K, "q6_K", 256, 210, true},
      {TensorType::kQ8_K, "q8_K", 256, 292, true},  {TensorType::kI8, "i8", 1, 1, false},
      {TensorType::kI16, "i16", 1, 2, false},       {TensorType::kI32, "i32", 1, 4, false},
      {TensorType::kI64, "i64", 1, 8, false},       {TensorType::kF64, "f64", 1, 8, false},
  };
  for (const Row& r : rows) {
    auto traits = tensor_type_traits(r.type);
    ASSERT_TRUE(traits) << r.name;
    EXPECT_EQ(traits->name, r.name);
    EXPECT_EQ(traits->block_size, r.block) << r.name;
    EXPECT_EQ(traits->type_size, r.bytes) << r.name;
    EXPECT_EQ(traits->supported, r.supported) << r.name;
    EXPECT_EQ(tensor_type_name(r.type), r.name);
    EXPECT_EQ(parse_tensor_type(r.name), r.type) << r.name;
  }
}

TEST(TensorType, UnknownIdsHaveNoTraits) {
  for (uint32_t id : {4u, 5u, 16u, 23u, 29u, 31u, 99u, 0xffffffffu}) EXPECT_FALSE(tensor_type_traits(id)) << id;
  EXPECT_EQ(tensor_type_name(static_cast<TensorType>(99)), "unknown");
}

TEST(TensorType, ParsesNamesIgnoringCase) {
  EXPECT_EQ(parse_tensor_type("Q4_k"), TensorType::kQ4_K);
  EXPECT_EQ(parse_tensor_type("BF16"), TensorType::kBF16);
  EXPECT_EQ(parse_tensor_type("Q8_0"), TensorType::kQ8_0);
  EXPECT_FALSE(parse_tensor_type("q4_k_m"));
  EXPECT_FALSE(parse_tensor_type(""));
}

TEST(TensorType, RowBytesCountWholeBlocks) {
  EXPECT_EQ(tensor_row_bytes(TensorType::kF32, 10), 40u);
  EXPECT_EQ(tensor_row_bytes(TensorType::kQ8_0, 64), 68u);
  EXPECT_EQ(tensor_row_bytes(TensorType::kQ6_K, 4096), 16u * 210u);
}

// ---------------------------------------------------------------------------------
// Values

TEST(GgufValue, ConvertsAmongIntegersAndRefusesMismatches) {
  EXPECT_EQ(GgufValue::u32(7).as_int(), 7);
  EXPECT_EQ(GgufValue::i32(-7).as_int(), -7);
  EXPECT_FALSE(GgufValue::u64(std::numeric_limits<uint64_t>::max()).as_int());
  EXPECT_EQ(GgufValue::u8(3).as_float(), 3.0);
  EXPECT_EQ(GgufValue::f32(0.5f).as_float(), 0.5);
  EXPECT_FALSE(GgufValue::f32(0.5f).as_int());
  EXPECT_FALSE(GgufValue::str("1").as_int());
  EXPECT_EQ(GgufValue::boolean(true).as_bool(), true);
  EXPECT_FALSE(GgufValue::u8(1).as_bool());
  EXPECT_EQ(GgufValue::array(GgufValueType::kString, {GgufValue::str("a")}).element_type(), GgufValueType::kString);
  EXPECT_EQ(GgufValue::array(GgufValueType::kString, {}).element_type(), GgufValueType::kUint8);
}

// ---------------------------------------------------------------------------------
// Round trips

TEST(GgufRoundTrip, EveryMetadataValueTypeReadsBackUnchanged) {
  const std::vector<std::pair<std::string, GgufValue>> kv = {
      {"t.u8", GgufValue::u8(255)},
      {"t.i8", GgufValue::i8(-128)},
      {"t.u16", GgufValue::u16(65535)},
      {"t.i16", GgufValue::i16(-32768)},
      {"t.u32", GgufValue::u32(0xffffffffu)},
      {"t.i32", GgufValue::i32(std::numeric_limits<int32_t>::min())},
      {"t.f32", GgufValue::f32(-1.25f)},
      {"t.f32_nan", GgufValue::f32(std::nanf(""))},
      {"t.true", GgufValue::boolean(true)},
      {"t.false", GgufValue::boolean(false)},
      {"t.str", GgufValue::str("hello")},
      {"t.empty_str", GgufValue::str("")},
      {"t.unicode", GgufValue::str("h\xc3\xa9llo, \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\xa6\x99")},
      {"t.nul", GgufValue::str(std::string("a\0b", 3))},
      {"t.u64", GgufValue::u64(std::numeric_limits<uint64_t>::max())},
      {"t.i64", GgufValue::i64(std::numeric_limits<int64_t>::min())},
      {"t.f64", GgufValue::f64(3.141592653589793)},
      {"t.arr_u32", GgufValue::array(GgufValueType::kUint32, {GgufValue::u32(1), GgufValue::u32(2)})},
      {"t.arr_empty", GgufValue::array(GgufValueType::kUint8, {})},
      {"t.arr_str", GgufValue::array(GgufValueType::kString, {GgufValue::str(""), GgufValue::str("\xe2\x96\x81the")})},
      {"t.arr_bool", GgufValue::array(GgufValueType::kBool, {GgufValue::boolean(true), GgufValue::boolean(false)})},
      {"t.arr_f32", GgufValue::array(GgufValueType::kFloat32, {GgufValue::f32(0.1f), GgufValue::f32(-2e30f)})},
      {"t.arr_i64", GgufValue::array(GgufValueType::kInt64, {GgufValue::i64(-1)})},
      {"t.arr_f64", GgufValue::array(GgufValueType::kFloat64, {GgufValue::f64(1e300)})},
      {"t.arr_arr", GgufValue::array(GgufValueType::kArray,
                                     {GgufValue::array(GgufValueType::kInt8, {GgufValue::i8(1), GgufValue::i8(-1)}),
                                      GgufValue::array(GgufValueType::kUint8, {}),
                                      GgufValue::array(GgufValueType::kString, {GgufValue::str("x")})})},
      {"t.deepest", nested(kGgufMaxArrayDepth)},
      {"", GgufValue::str("an empty key is legal")},
  };
  GgufWriter w;
  for (const auto& [key, value] : kv) w.set(key, value);
  const std::vector<uint8_t> bytes = w.to_bytes();
  auto file = parse_bytes(bytes);
  ASSERT_TRUE(file.is_ok()) << file.status().message();
  EXPECT_EQ((*file)->version(), 3u);
  EXPECT_EQ((*file)->metadata().size(), kv.size());
  for (const auto& [key, value] : kv) {
    const GgufValue* got = (*file)->find(key);
    ASSERT_NE(got, nullptr) << key;
    EXPECT_TRUE(values_equal(*got, value)) << key;
  }
  EXPECT_EQ((*file)->find("t.missing"), nullptr);
}

TEST(GgufRoundTrip, WriterKeepsInsertionOrderAndSetReplacesInPlace) {
  GgufWriter w;
  w.set("b.first", GgufValue::u32(1));
  w.set("a.second", GgufValue::u32(2));
  w.set("b.first", GgufValue::str("replaced"));
  const std::vector<uint8_t> bytes = w.to_bytes();
  // Header is 24 bytes; the first key follows as a u64 length and its bytes.
  ASSERT_GT(bytes.size(), 40u);
  EXPECT_EQ(bytes[16], 2);  // n_kv
  EXPECT_EQ(bytes[24], 7);  // strlen("b.first")
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&bytes[32]), 7), "b.first");
  auto file = parse_bytes(bytes);
  ASSERT_TRUE(file.is_ok()) << file.status().message();
  ASSERT_NE((*file)->find("b.first")->as_string(), nullptr);
  EXPECT_EQ(*(*file)->find("b.first")->as_string(), "replaced");
}

// Writes one tensor of every known type, shaped [2 blocks, 3, 2], and reads it back.
void expect_tensors_round_trip(uint32_t alignment) {
  GgufWriter w;
  if (alignment != 32) w.set("general.alignment", GgufValue::u32(alignment));
  w.set("general.architecture", GgufValue::str("test"));
  struct Added {
    std::string name;
    TensorType type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> data;
  };
  std::vector<Added> added;
  uint32_t seed = 1;
  for (uint32_t id = 0; id < 40; ++id) {
    auto traits = tensor_type_traits(id);
    if (!traits) continue;
    const auto type = static_cast<TensorType>(id);
    std::vector<int64_t> ne = {2 * int64_t{traits->block_size}, 3, 2};
    if (id % 2 == 1) ne.resize(1);  // some 1-D tensors, for odd sizes
    int64_t rows = 1;
    for (size_t d = 1; d < ne.size(); ++d) rows *= ne[d];
    std::vector<uint8_t> data = random_bytes(tensor_row_bytes(type, ne[0]) * rows, seed++);
    const std::string name = "blk.0." + std::string(traits->name);
    ASSERT_TRUE(w.add_tensor(name, type, ne, data).is_ok()) << name;
    added.push_back({name, type, ne, data});
  }
  ASSERT_EQ(added.size(), 20u);
  const std::vector<uint8_t> bytes = w.to_bytes();
  auto file = parse_bytes(bytes);
  ASSERT_TRUE(file.is_ok()) << file.status().message();
  const GgufFile& f = **file;
  EXPECT_EQ(f.alignment(), alignment);
  EXPECT_EQ(f.data_offset() % alignment, 0u);
  ASSERT_EQ(f.tensors().size(), added.size());
  for (size_t i = 0; i < added.size(); ++i) {
    const GgufTensorInfo& t = f.tensors()[i];  // in the order they were added
    EXPECT_EQ(t.name, added[i].name);
    EXPECT_EQ(f.find_tensor(added[i].name), &t);
    EXPECT_EQ(t.type, added[i].type) << t.name;
    ASSERT_EQ(t.n_dims, static_cast<int>(added[i].ne.size())) << t.name;
    for (int d = 0; d < kGgufMaxDims; ++d) {
      EXPECT_EQ(t.ne[d], d < t.n_dims ? added[i].ne[d] : 1) << t.name << " ne[" << d << "]";
    }
    EXPECT_EQ(t.offset % alignment, 0u) << t.name;
    EXPECT_EQ(t.size, added[i].data.size()) << t.name;
    std::span<const uint8_t> data = f.tensor_data(t);
    EXPECT_TRUE(std::equal(data.begin(), data.end(), added[i].data.begin(), added[i].data.end())) << t.name;
  }
  EXPECT_EQ(f.find_tensor("missing"), nullptr);
}

TEST(GgufRoundTrip, TensorsOfEveryTypeReadBackWithAlignedOffsets) { expect_tensors_round_trip(32); }

TEST(GgufRoundTrip, CustomAlignment64IsHonoured) { expect_tensors_round_trip(64); }

TEST(GgufRoundTrip, OpenMapsAFileFromDisk) {
  const fs::path path = fs::temp_directory_path() / ("gguf_test_" + std::to_string(::getpid()) + ".gguf");
  GgufWriter w;
  w.set("general.architecture", GgufValue::str("llama"));
  const std::vector<uint8_t> weights = random_bytes(34 * 2 * 4, 7);
  ASSERT_TRUE(w.add_tensor("w", TensorType::kQ8_0, {64, 4}, weights).is_ok());
  ASSERT_TRUE(w.write(path).is_ok());
  {
    auto file = GgufFile::open(path);
    ASSERT_TRUE(file.is_ok()) << file.status().message();
    EXPECT_EQ((*file)->file_size(), fs::file_size(path));
    std::span<const uint8_t> data = (*file)->tensor_data(*(*file)->find_tensor("w"));
    EXPECT_TRUE(std::equal(data.begin(), data.end(), weights.begin(), weights.end()));
  }
  fs::remove(path);
  auto missing = GgufFile::open(path);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(path.string()), std::string::npos);
}

TEST(GgufWriter, RefusesTensorsThatCouldNotBeRead) {
  GgufWriter w;
  EXPECT_FALSE(w.add_tensor("short", TensorType::kF32, {4}, std::vector<uint8_t>(15)).is_ok());
  Status odd = w.add_tensor("odd", TensorType::kQ4_0, {48}, std::vector<uint8_t>(27));
  EXPECT_NE(odd.message().find("not a multiple of the q4_0 block size 32"), std::string::npos) << odd.message();
  EXPECT_FALSE(w.add_tensor("zero", TensorType::kF32, {0}, {}).is_ok());
  EXPECT_FALSE(w.add_tensor("five", TensorType::kF32, {1, 1, 1, 1, 1}, std::vector<uint8_t>(4)).is_ok());
  ASSERT_TRUE(w.add_tensor("ok", TensorType::kF32, {1}, std::vector<uint8_t>(4)).is_ok());
  EXPECT_EQ(w.add_tensor("ok", TensorType::kF32, {1}, std::vector<uint8_t>(4)).code(), StatusCode::kAlreadyExists);
}

// ---------------------------------------------------------------------------------
// Corrupt files: each is refused with an error naming what and where.

TEST(GgufCorrupt, BadMagicIsNotAGgufFile) {
  std::vector<uint8_t> bytes = GgufWriter().to_bytes();
  std::memcpy(bytes.data(), "GGML", 4);
  expect_refused(bytes, {"not a GGUF file", "'GGML'"});
}

TEST(GgufCorrupt, OnlyVersions2And3AreRead) {
  for (uint32_t version : {1u, 4u, 0u}) {
    const std::vector<uint8_t> bytes = RawGguf().header(0, 0, version).bytes();
    auto file = parse_bytes(bytes);
    ASSERT_FALSE(file.is_ok());
    const std::string expected = "x.gguf: GGUF version " + std::to_string(version) + " is not supported (2 and 3 are)";
    EXPECT_EQ(file.status().message().rfind(expected, 0), 0u) << file.status().message();
  }
  const std::vector<uint8_t> v2_bytes = RawGguf().header(0, 0, 2).bytes();
  auto v2 = parse_bytes(v2_bytes);
  ASSERT_TRUE(v2.is_ok()) << v2.status().message();
  EXPECT_EQ((*v2)->version(), 2u);
  expect_refused(RawGguf().header(0, 0, 0x03000000).bytes(), {"big-endian"});
}

// A small valid model whose last tensor ends the file (no trailing padding).
std::vector<uint8_t> small_model() {
  GgufWriter w;
  w.set("general.architecture", GgufValue::str("llama"));
  w.set("tokenizer.ggml.tokens", GgufValue::array(GgufValueType::kString, {GgufValue::str("a"), GgufValue::str("bc")}));
  w.set("llama.block_count", GgufValue::u32(1));
  EXPECT_TRUE(w.add_tensor("token_embd.weight", TensorType::kQ8_0, {32, 2}, random_bytes(68, 1)).is_ok());
  EXPECT_TRUE(w.add_tensor("output_norm.weight", TensorType::kF32, {8}, random_bytes(32, 2)).is_ok());
  return w.to_bytes();
}

TEST(GgufCorrupt, TruncationAtEveryByteIsRefused) {
  const std::vector<uint8_t> whole = small_model();
  ASSERT_TRUE(parse_bytes(whole).is_ok());
  for (size_t n = 0; n < whole.size(); ++n) {
    std::vector<uint8_t> prefix(whole.begin(), whole.begin() + n);
    auto file = parse_bytes(prefix);
    ASSERT_FALSE(file.is_ok()) << "accepted the first " << n << " bytes";
    EXPECT_NE(file.status().message().find("byte"), std::string::npos) << file.status().message();
  }
}

TEST(GgufCorrupt, TruncationInsideAValueNamesTheKeyAndByte) {
  const std::vector<uint8_t> whole = small_model();
  // 24-byte header, then key "general.architecture" (8+20), type (4), value (8+5).
  const size_t tokens_value = 24 + 28 + 4 + 13 + 8 + 21 + 4;
  // Cut 7 bytes into the second token's length: the array's minimum size still fits.
  const size_t second_token = tokens_value + 12 + 8 + 1;
  std::vector<uint8_t> cut(whole.begin(), whole.begin() + second_token + 7);
  auto file = parse_bytes(cut);
  ASSERT_FALSE(file.is_ok());
  EXPECT_EQ(file.status().message().rfind("x.gguf: truncated at byte " + std::to_string(second_token) +
                                              " while reading the value of key 'tokenizer.ggml.tokens'",
                                          0),
            0u)
      << file.status().message();
}

TEST(GgufCorrupt, TensorDataPastTheEndOfTheFile) {
  expect_refused(RawGguf().header(1, 0).tensor("w", {16}, 0, 0).data(32).bytes(), {"tensor 'w'", "past the end"});
  expect_refused(RawGguf().header(1, 0).tensor("w", {1}, 0, 1ull << 63).data(32).bytes(), {"'w'", "past the end"});
}

TEST(GgufCorrupt, OverlappingTensors) {
  expect_refused(RawGguf().header(2, 0).tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).data(96).bytes(),
                 {"tensor 'b': data overlaps tensor 'a'"});
  // Listed out of offset order: still caught.
  expect_refused(RawGguf().header(2, 0).tensor("late", {8}, 0, 64).tensor("early", {32}, 0, 0).data(128).bytes(),
                 {"tensor 'late': data overlaps tensor 'early'"});
}

TEST(GgufCorrupt, MisalignedTensorOffset) {
  expect_refused(RawGguf().header(1, 0).tensor("w", {8}, 0, 4).data(64).bytes(),
                 {"tensor 'w': data offset 4 is not a multiple of the 32-byte alignment"});
}

TEST(GgufCorrupt, UnknownTensorType) {
  expect_refused(RawGguf().header(1, 0).tensor("w", {8}, 99, 0).data(64).bytes(), {"tensor 'w': unknown type 99"});
}

TEST(GgufCorrupt, RowNotAMultipleOfTheBlockSize) {
  expect_refused(RawGguf().header(1, 0).tensor("w", {48, 2}, 2, 0).data(64).bytes(),
                 {"'w'", "not a multiple of the q4_0 block size 32"});
}

TEST(GgufCorrupt, DimensionCountOutsideOneToFour) {
  expect_refused(RawGguf().header(1, 0).tensor("w", {}, 0, 0).data(64).bytes(), {"tensor 'w': n_dims 0"});
  expect_refused(RawGguf().header(1, 0).tensor("w", {1, 1, 1, 1, 1}, 0, 0).data(64).bytes(), {"tensor 'w': n_dims 5"});
}

TEST(GgufCorrupt, ZeroNegativeOrHugeDimensions) {
  expect_refused(RawGguf().header(1, 0).tensor("w", {8, 0}, 0, 0).data(64).bytes(), {"'w'", "ne[1] = 0"});
  expect_refused(RawGguf().header(1, 0).tensor("w", {8, uint64_t(-3)}, 0, 0).data(64).bytes(), {"'w'", "ne[1] = -3"});
  expect_refused(RawGguf().header(1, 0).tensor("w", {1ull << 30, 1ull << 30}, 0, 0).data(64).bytes(),
                 {"'w'", "more than 1125899906842624 elements"});
}

TEST(GgufCorrupt, AbsurdCountsAndLengthsFailFastWithoutAllocating) {
  const auto start = std::chrono::steady_clock::now();
  expect_refused(RawGguf().header(1ull << 60, 0).data(64).bytes(),
                 {"header: 1152921504606846976 tensors cannot fit", "(at byte 8)"});
  expect_refused(RawGguf().header(0, 1ull << 60).data(64).bytes(), {"metadata entries"});
  // String value of 2^62 bytes.
  expect_refused(RawGguf().header(0, 1).str("k").u32(8).u64(1ull << 62).data(64).bytes(), {"key 'k'", "string"});
  // Arrays of 2^62 elements: u8, and u64 (where count * 8 would overflow).
  expect_refused(RawGguf().header(0, 1).str("k").u32(9).u32(0).u64(1ull << 62).data(64).bytes(), {"key 'k'"});
  expect_refused(RawGguf().header(0, 1).str("k").u32(9).u32(10).u64(1ull << 62).data(64).bytes(), {"key 'k'"});
  expect_refused(RawGguf().header(0, 1).str("k").u32(9).u32(9).u64(~0ull).data(64).bytes(), {"key 'k'"});
  // Key and tensor names of 2^62 bytes.
  expect_refused(RawGguf().header(0, 1).u64(1ull << 62).data(64).bytes(), {"metadata entry 0"});
  expect_refused(RawGguf().header(1, 0).u64(1ull << 62).data(64).bytes(), {"tensor 0"});
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::milliseconds(200));
}

TEST(GgufCorrupt, KeysLongerThanTheLimit) {
  const std::string key(kGgufMaxNameLength + 1, 'k');
  expect_refused(RawGguf().header(0, 1).str(key).u32(4).u32(1).bytes(), {"metadata entry 0", "longer than"});
}

TEST(GgufCorrupt, ArraysNestedTooDeep) {
  GgufWriter w;
  w.set("deep", nested(kGgufMaxArrayDepth + 1));
  expect_refused(w.to_bytes(), {"key 'deep'", "nested more than 8 levels"});
}

TEST(GgufCorrupt, UnknownValueTypes) {
  expect_refused(RawGguf().header(0, 1).str("k").u32(13).u32(0).data(32).bytes(), {"key 'k'", "unknown value type 13"});
  expect_refused(RawGguf().header(0, 1).str("k").u32(9).u32(77).u64(0).data(32).bytes(), {"key 'k'", "type 77"});
}

TEST(GgufCorrupt, DuplicateKey) {
  expect_refused(RawGguf().header(0, 2).str("a.b").u32(4).u32(1).str("a.b").u32(4).u32(2).bytes(),
                 {"key 'a.b': duplicate key, first at byte 24 (at byte 43)"});
}

TEST(GgufCorrupt, DuplicateTensorName) {
  expect_refused(RawGguf().header(2, 0).tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).data(64).bytes(),
                 {"tensor 'w': duplicate tensor name"});
}

TEST(GgufCorrupt, AlignmentMustBeAPowerOfTwoUint32) {
  for (uint32_t alignment : {0u, 3u, 48u}) {
    GgufWriter w;
    w.set("general.alignment", GgufValue::u32(alignment));
    expect_refused(w.to_bytes(), {"key 'general.alignment': alignment " + std::to_string(alignment) +
                                  " is not a non-zero power of two"});
  }
  GgufWriter w;
  w.set("general.alignment", GgufValue::i32(32));
  expect_refused(w.to_bytes(), {"key 'general.alignment': must be of type uint32, not int32"});
}

TEST(GgufCorrupt, EmptyFileOnDisk) {
  const fs::path path = fs::temp_directory_path() / ("gguf_empty_" + std::to_string(::getpid()) + ".gguf");
  std::ofstream(path).close();
  auto file = GgufFile::open(path);
  fs::remove(path);
  ASSERT_FALSE(file.is_ok());
  EXPECT_NE(file.status().message().find("truncated at byte 0 while reading the magic"), std::string::npos)
      << file.status().message();
}

TEST(GgufFile, AFileWithoutTensorsMayEndBeforeThePadding) {
  // llama.cpp's ggml-vocab-*.gguf files do this.
  const std::vector<uint8_t> bytes = RawGguf().header(0, 1).str("general.architecture").u32(8).str("gpt2").bytes();
  auto file = parse_bytes(bytes);
  ASSERT_TRUE(file.is_ok()) << file.status().message();
  EXPECT_GT((*file)->data_offset(), (*file)->file_size());
  EXPECT_TRUE((*file)->tensors().empty());
}

// ---------------------------------------------------------------------------------
// Fixture models

// The test models live in X/shared/models next to the repository X/main.
std::optional<fs::path> find_shared_models() {
  auto shared = clusterd::testing::find_shared_dir();
  if (!shared) return std::nullopt;
  return *shared / "models";
}

std::vector<fs::path> fixture_files() {
  std::vector<fs::path> out;
  if (auto dir = find_shared_models()) {
    for (const auto& entry : fs::directory_iterator(*dir)) {
      if (entry.path().extension() == ".gguf") out.push_back(entry.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(GgufFixtures, EveryModelOpensAndItsTensorsLieInsideTheFile) {
  if (!find_shared_models()) GTEST_SKIP() << "../shared/models was not found; the fixture models are not here";
  const std::vector<fs::path> files = fixture_files();
  ASSERT_FALSE(files.empty());
  for (const fs::path& path : files) {
    SCOPED_TRACE(path.filename().string());
    auto file = GgufFile::open(path);
    ASSERT_TRUE(file.is_ok()) << file.status().message();
    const GgufFile& f = **file;
    EXPECT_TRUE(f.version() == 3 || f.version() == 2);
    const bool vocab_only = path.filename().string().rfind("ggml-vocab-", 0) == 0;
    if (vocab_only) {
      EXPECT_TRUE(f.tensors().empty());
    } else {
      EXPECT_GT(f.tensors().size(), 0u);
    }
    const GgufValue* arch = f.find("general.architecture");
    ASSERT_NE(arch, nullptr);
    EXPECT_NE(arch->as_string(), nullptr);
    for (const GgufTensorInfo& t : f.tensors()) {
      std::span<const uint8_t> data = f.tensor_data(t);
      EXPECT_EQ(data.size(), t.size) << t.name;
      EXPECT_LE(f.data_offset() + t.offset + t.size, f.file_size()) << t.name;
    }
  }
}

TEST(GgufFixtures, Stories260KIsTheLlamaWeExpect) {
  auto dir = find_shared_models();
  if (!dir) GTEST_SKIP() << "../shared/models was not found; the fixture models are not here";
  auto file = GgufFile::open(*dir / "stories260K.gguf");
  ASSERT_TRUE(file.is_ok()) << file.status().message();
  const GgufFile& f = **file;
  EXPECT_EQ(*f.find("general.architecture")->as_string(), "llama");
  EXPECT_EQ(f.find("llama.block_count")->as_int(), 5);
  EXPECT_EQ(f.find("llama.embedding_length")->as_int(), 64);
  ASSERT_EQ(f.find("tokenizer.ggml.tokens")->as_array()->size(), 512u);
  EXPECT_EQ(f.find("tokenizer.ggml.tokens")->element_type(), GgufValueType::kString);
  EXPECT_EQ(f.tensors().size(), 48u);
  const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->type, TensorType::kF32);
  EXPECT_EQ(embd->n_dims, 2);
  EXPECT_EQ(embd->ne[0], 64);
  EXPECT_EQ(embd->ne[1], 512);
}

TEST(GgufFixtures, RewritingAModelKeepsEveryValueAndTensor) {
  auto dir = find_shared_models();
  if (!dir) GTEST_SKIP() << "../shared/models was not found; the fixture models are not here";
  for (const char* name : {"tiny-llama-gqa.q4_k_m.gguf", "ggml-vocab-phi-3.gguf"}) {
    SCOPED_TRACE(name);
    auto original = GgufFile::open(*dir / name);
    ASSERT_TRUE(original.is_ok()) << original.status().message();
    GgufWriter w;
    for (const auto& [key, value] : (*original)->metadata()) w.set(key, value);
    for (const GgufTensorInfo& t : (*original)->tensors()) {
      std::span<const uint8_t> data = (*original)->tensor_data(t);
      ASSERT_TRUE(w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims), {data.begin(), data.end()})
                      .is_ok());
    }
    const std::vector<uint8_t> bytes = w.to_bytes();
    auto copy = parse_bytes(bytes);
    ASSERT_TRUE(copy.is_ok()) << copy.status().message();
    ASSERT_EQ((*copy)->metadata().size(), (*original)->metadata().size());
    for (const auto& [key, value] : (*original)->metadata()) {
      ASSERT_NE((*copy)->find(key), nullptr) << key;
      EXPECT_TRUE(values_equal(*(*copy)->find(key), value)) << key;
    }
    ASSERT_EQ((*copy)->tensors().size(), (*original)->tensors().size());
    for (const GgufTensorInfo& t : (*original)->tensors()) {
      std::span<const uint8_t> a = (*original)->tensor_data(t);
      std::span<const uint8_t> b = (*copy)->tensor_data(*(*copy)->find_tensor(t.name));
      EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin(), b.end())) << t.name;
    }
  }
}

}  // namespace
}  // namespace clusterd
