// Block geometry of ggml's tensor types. The byte sizes are spelled out from each
// block's fields so that a wrong constant fails to compile rather than misreads a file.
#include "clusterd/model/tensor_type.h"

#include <array>

namespace clusterd {
namespace {

constexpr uint32_t kHalf = 2;      // ggml_half (fp16)
constexpr uint32_t kQK = 32;       // elements per block of the legacy quants
constexpr uint32_t kQKK = 256;     // elements per super-block of the k-quants
constexpr uint32_t kKScales = 12;  // packed 6-bit scales and mins of Q4_K / Q5_K

// Legacy quants: a scale d (and a min m for _1), then the packed quants.
constexpr uint32_t kQ4_0Bytes = kHalf + kQK / 2;
constexpr uint32_t kQ4_1Bytes = 2 * kHalf + kQK / 2;
constexpr uint32_t kQ5_0Bytes = kHalf + 4 + kQK / 2;  // + 32 high bits
constexpr uint32_t kQ5_1Bytes = 2 * kHalf + 4 + kQK / 2;
constexpr uint32_t kQ8_0Bytes = kHalf + kQK;
constexpr uint32_t kQ8_1Bytes = 2 * kHalf + kQK;  // d and the sum s
// K-quants, per 256-element super-block.
constexpr uint32_t kQ2_KBytes = kQKK / 16 + kQKK / 4 + 2 * kHalf;            // scales, qs, d, dmin
constexpr uint32_t kQ3_KBytes = kQKK / 8 + kQKK / 4 + 12 + kHalf;            // hmask, qs, scales, d
constexpr uint32_t kQ4_KBytes = 2 * kHalf + kKScales + kQKK / 2;             // d, dmin, scales, qs
constexpr uint32_t kQ5_KBytes = 2 * kHalf + kKScales + kQKK / 8 + kQKK / 2;  // + qh
constexpr uint32_t kQ6_KBytes = kQKK / 2 + kQKK / 4 + kQKK / 16 + kHalf;     // ql, qh, scales, d
constexpr uint32_t kQ8_KBytes = 4 + kQKK + (kQKK / 16) * 2;                  // f32 d, qs, i16 bsums

static_assert(kQ4_0Bytes == 18 && kQ4_1Bytes == 20 && kQ5_0Bytes == 22 && kQ5_1Bytes == 24);
static_assert(kQ8_0Bytes == 34 && kQ8_1Bytes == 36);
static_assert(kQ2_KBytes == 84 && kQ3_KBytes == 110 && kQ4_KBytes == 144);
static_assert(kQ5_KBytes == 176 && kQ6_KBytes == 210 && kQ8_KBytes == 292);

struct TensorTypeEntry {
  TensorType type;
  TensorTypeTraits traits;
};

constexpr std::array<TensorTypeEntry, 20> kTensorTypes = {{
    {TensorType::kF32, {"f32", 1, 4, true}},
    {TensorType::kF16, {"f16", 1, 2, true}},
    {TensorType::kQ4_0, {"q4_0", kQK, kQ4_0Bytes, true}},
    {TensorType::kQ4_1, {"q4_1", kQK, kQ4_1Bytes, false}},
    {TensorType::kQ5_0, {"q5_0", kQK, kQ5_0Bytes, false}},
    {TensorType::kQ5_1, {"q5_1", kQK, kQ5_1Bytes, false}},
    {TensorType::kQ8_0, {"q8_0", kQK, kQ8_0Bytes, true}},
    {TensorType::kQ8_1, {"q8_1", kQK, kQ8_1Bytes, false}},
    {TensorType::kQ2_K, {"q2_K", kQKK, kQ2_KBytes, false}},
    {TensorType::kQ3_K, {"q3_K", kQKK, kQ3_KBytes, false}},
    {TensorType::kQ4_K, {"q4_K", kQKK, kQ4_KBytes, true}},
    {TensorType::kQ5_K, {"q5_K", kQKK, kQ5_KBytes, true}},
    {TensorType::kQ6_K, {"q6_K", kQKK, kQ6_KBytes, true}},
    {TensorType::kQ8_K, {"q8_K", kQKK, kQ8_KBytes, true}},  // activations of the k-quant dot products
    {TensorType::kI8, {"i8", 1, 1, false}},
    {TensorType::kI16, {"i16", 1, 2, false}},
    {TensorType::kI32, {"i32", 1, 4, false}},
    {TensorType::kI64, {"i64", 1, 8, false}},
    {TensorType::kF64, {"f64", 1, 8, false}},
    {TensorType::kBF16, {"bf16", 1, 2, true}},
}};

char to_lower_ascii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (to_lower_ascii(a[i]) != to_lower_ascii(b[i])) return false;
  }
  return true;
}

}  // namespace

std::optional<TensorTypeTraits> tensor_type_traits(uint32_t type_id) {
  for (const TensorTypeEntry& entry : kTensorTypes) {
    if (static_cast<uint32_t>(entry.type) == type_id) return entry.traits;
  }
  return std::nullopt;
}

std::string_view tensor_type_name(TensorType t) {
  std::optional<TensorTypeTraits> traits = tensor_type_traits(t);
  return traits ? traits->name : std::string_view("unknown");
}

std::optional<TensorType> parse_tensor_type(std::string_view name) {
  for (const TensorTypeEntry& entry : kTensorTypes) {
    if (equals_ignoring_case(entry.traits.name, name)) return entry.type;
  }
  return std::nullopt;
}

size_t tensor_row_bytes(TensorType t, int64_t n) {
  std::optional<TensorTypeTraits> traits = tensor_type_traits(t);
  if (!traits || n <= 0) return 0;
  return static_cast<size_t>(n) / traits->block_size * traits->type_size;
}

}  // namespace clusterd
