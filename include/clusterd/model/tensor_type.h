// Tensor element types as GGUF numbers them (ggml's type ids), with their block
// geometry. One vocabulary for model/, engine/ and placement/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace clusterd {

enum class TensorType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
};

struct TensorTypeTraits {
  std::string_view name;  // "f32", "q4_K", ... as ggml spells them
  uint32_t block_size;    // elements per block (1 for plain types)
  uint32_t type_size;     // bytes per block
  bool supported;         // clusterd's kernels handle it
};

// Traits of a GGUF type id; nullopt for ids this build does not know at all.
std::optional<TensorTypeTraits> tensor_type_traits(uint32_t type_id);
inline std::optional<TensorTypeTraits> tensor_type_traits(TensorType t) {
  return tensor_type_traits(static_cast<uint32_t>(t));
}
std::string_view tensor_type_name(TensorType t);
// Parses "q8_0", "Q4_K", "f16", "bf16"... (case-insensitive).
std::optional<TensorType> parse_tensor_type(std::string_view name);

// Bytes of a row of `n` elements; n must be a multiple of the block size.
size_t tensor_row_bytes(TensorType t, int64_t n);

}  // namespace clusterd
