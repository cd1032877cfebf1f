// GGUF files (versions 2 and 3): a validating reader over mmap and a writer for test
// and synthetic models. Layout: magic "GGUF", u32 version, u64 tensor count, u64 KV
// count, KV pairs (string key, u32 value type, value), tensor infos (name, u32 n_dims,
// u64 ne[n_dims], u32 type, u64 offset), padding to general.alignment (default 32),
// then the tensor data. All little-endian.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "clusterd/common/status.h"
#include "clusterd/model/tensor_type.h"

namespace clusterd {

enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// One metadata value. Arrays hold values of one type (possibly arrays themselves).
struct GgufValue {
  GgufValueType type = GgufValueType::kUint32;
  // Unsigned integer types hold uint64_t, signed ones int64_t, kFloat32/kFloat64 double.
  std::variant<uint64_t, int64_t, double, bool, std::string, std::vector<GgufValue>> data;

  static GgufValue u32(uint32_t v) { return {GgufValueType::kUint32, uint64_t{v}}; }
  static GgufValue i32(int32_t v) { return {GgufValueType::kInt32, int64_t{v}}; }
  static GgufValue f32(float v) { return {GgufValueType::kFloat32, double{v}}; }
  static GgufValue boolean(bool v) { return {GgufValueType::kBool, v}; }
  static GgufValue str(std::string v) { return {GgufValueType::kString, std::move(v)}; }
  static GgufValue u8(uint8_t v) { return {GgufValueType::kUint8, uint64_t{v}}; }
  static GgufValue i8(int8_t v) { return {GgufValueType::kInt8, int64_t{v}}; }
  static GgufValue u16(uint16_t v) { return {GgufValueType::kUint16, uint64_t{v}}; }
  static GgufValue i16(int16_t v) { return {GgufValueType::kInt16, int64_t{v}}; }
  static GgufValue u64(uint64_t v) { return {GgufValueType::kUint64, v}; }
  static GgufValue i64(int64_t v) { return {GgufValueType::kInt64, v}; }
  static GgufValue f64(double v) { return {GgufValueType::kFloat64, v}; }
  // An array whose items must all be of `element_type`. The type is not stored apart:
  // element_type() is the first item's, the writer encodes every item as that type, and
  // an empty array reads and writes as kUint8.
  static GgufValue array(GgufValueType element_type, std::vector<GgufValue> items);

  // Typed access with conversion among integer types; nullopt on a type mismatch or
  // an out-of-range value.
  std::optional<int64_t> as_int() const;
  std::optional<double> as_float() const;  // integers convert too
  std::optional<bool> as_bool() const;
  const std::string* as_string() const;
  const std::vector<GgufValue>* as_array() const;
  GgufValueType element_type() const;  // for arrays: the element type (kUint8 if empty)
};

// "uint32", "string", "array", ... as the GGUF spec names them; "unknown" otherwise.
const char* gguf_value_type_name(GgufValueType type);

constexpr int kGgufMaxDims = 4;

// Reader limits: a file beyond them is refused with an error, never half-read.
constexpr int kGgufMaxArrayDepth = 8;                         // arrays of arrays of ...
constexpr uint64_t kGgufMaxNameLength = 65535;                // keys and tensor names, in bytes
constexpr uint64_t kGgufMaxMetadataValues = 1u << 22;         // scalars + array elements, all keys
constexpr int64_t kGgufMaxTensorElements = int64_t{1} << 50;  // per tensor

struct GgufTensorInfo {
  std::string name;
  TensorType type = TensorType::kF32;
  int n_dims = 0;
  int64_t ne[kGgufMaxDims] = {1, 1, 1, 1};  // ne[0] is the row length (contiguous)
  uint64_t offset = 0;                      // from the start of the data section
  uint64_t size = 0;                        // bytes
  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

// A GGUF file opened read-only through mmap. Tensor data is not touched (so not paged
// in) until a caller reads it.
class GgufFile {
 public:
  // Opens and validates. Errors name the file and, where it applies, the key or tensor
  // and the byte offset ("x.gguf: tensor blk.3.attn_q: data [..] runs past the end of
  // the file at byte 1234"). Never allocates more than the file could justify.
  static Result<std::unique_ptr<GgufFile>> open(const std::filesystem::path& path);
  // Parses an in-memory image (tests, fuzzing); `name` is used in errors. The bytes
  // must outlive the returned object.
  static Result<std::unique_ptr<GgufFile>> parse(std::span<const uint8_t> bytes, const std::string& name);
  // The same over bytes that `owner` keeps alive (a buffer of slices streamed from a
  // peer); the file holds `owner` until it is destroyed. With `discardable`, the bytes
  // are a private anonymous mapping whose pages discard() may free.
  static Result<std::unique_ptr<GgufFile>> parse(std::span<const uint8_t> bytes, const std::string& name,
                                                 std::shared_ptr<const void> owner, bool discardable = false);
  ~GgufFile();

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  const std::string& name() const { return name_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const GgufValue* find(const std::string& key) const;
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  // Bytes of a tensor's data (inside the mapping).
  std::span<const uint8_t> tensor_data(const GgufTensorInfo& tensor) const;
  // Drops the pages wholly inside `bytes` (a span of this file's data) from this
  // process's memory, for data that has been copied elsewhere: a mapped file pages them
  // in again if they are read later; an in-memory image is left as it is.
  void release(std::span<const uint8_t> bytes) const;
  // As release, for data that will never be read again (copied, and its only reader
  // switched to the copy): a discardable image also frees those pages, which read as
  // zeros afterwards.
  void discard(std::span<const uint8_t> bytes) const;
  uint64_t data_offset() const { return data_offset_; }  // file offset of the data section
  uint64_t file_size() const { return bytes_.size(); }

 private:
  GgufFile() = default;
  std::string name_;
  void* map_ = nullptr;  // munmap'ed in the destructor when set
  size_t map_size_ = 0;
  std::shared_ptr<const void> owner_;
  bool discardable_ = false;
  std::span<const uint8_t> bytes_;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// Builds a GGUF file in memory or on disk (version 3).
class GgufWriter {
 public:
  void set(const std::string& key, GgufValue value);
  // Adds a tensor; `data` must be exactly tensor_row_bytes(type, ne[0]) * rows bytes.
  Status add_tensor(const std::string& name, TensorType type, std::vector<int64_t> ne, std::vector<uint8_t> data);
  std::vector<uint8_t> to_bytes() const;
  Status write(const std::filesystem::path& path) const;

 private:
  struct Tensor {
    std::string name;
    TensorType type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> data;
  };
  std::vector<std::pair<std::string, GgufValue>> metadata_;  // in insertion order
  std::vector<Tensor> tensors_;
};

}  // namespace clusterd
