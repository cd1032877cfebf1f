// GgufWriter: builds version-3 GGUF images for tests and synthetic models.
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <system_error>

#include "clusterd/model/gguf.h"

namespace clusterd {
namespace {

static_assert(std::endian::native == std::endian::little, "the GGUF writer stores fields as they are in memory");

constexpr uint32_t kGgufWriterVersion = 3;
constexpr uint32_t kGgufDefaultAlignment = 32;

template <typename T>
void gguf_put(std::vector<uint8_t>* out, T v) {
  const size_t at = out->size();
  out->resize(at + sizeof(T));
  std::memcpy(out->data() + at, &v, sizeof(T));
}

void gguf_put_string(std::vector<uint8_t>* out, const std::string& s) {
  gguf_put<uint64_t>(out, s.size());
  out->insert(out->end(), s.begin(), s.end());
}

void gguf_pad_to(std::vector<uint8_t>* out, uint64_t alignment) {
  out->resize((out->size() + alignment - 1) / alignment * alignment, 0);
}

// The integer a value holds, whatever its alternative (floats truncate; out of range is 0).
template <typename T>
T gguf_integer_of(const GgufValue& v) {
  if (const uint64_t* u = std::get_if<uint64_t>(&v.data)) return static_cast<T>(*u);
  if (const int64_t* i = std::get_if<int64_t>(&v.data)) return static_cast<T>(*i);
  if (const bool* b = std::get_if<bool>(&v.data)) return static_cast<T>(*b ? 1 : 0);
  if (const double* d = std::get_if<double>(&v.data)) {
    const double lo = static_cast<double>(std::numeric_limits<T>::min());
    const double hi = static_cast<double>(std::numeric_limits<T>::max());
    return (std::isfinite(*d) && *d >= lo && *d < hi) ? static_cast<T>(*d) : T{0};
  }
  return T{0};
}

double gguf_float_of(const GgufValue& v) {
  if (const bool* b = std::get_if<bool>(&v.data)) return *b ? 1.0 : 0.0;
  return v.as_float().value_or(0.0);
}

// Encodes `v` as a value of `type` (without the type tag), so that the bytes always
// match the tag even when an item disagrees with its array's element type.
void gguf_put_payload(std::vector<uint8_t>* out, const GgufValue& v, GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8: gguf_put(out, gguf_integer_of<uint8_t>(v)); return;
    case GgufValueType::kInt8: gguf_put(out, gguf_integer_of<int8_t>(v)); return;
    case GgufValueType::kUint16: gguf_put(out, gguf_integer_of<uint16_t>(v)); return;
    case GgufValueType::kInt16: gguf_put(out, gguf_integer_of<int16_t>(v)); return;
    case GgufValueType::kUint32: gguf_put(out, gguf_integer_of<uint32_t>(v)); return;
    case GgufValueType::kInt32: gguf_put(out, gguf_integer_of<int32_t>(v)); return;
    case GgufValueType::kUint64: gguf_put(out, gguf_integer_of<uint64_t>(v)); return;
    case GgufValueType::kInt64: gguf_put(out, gguf_integer_of<int64_t>(v)); return;
    case GgufValueType::kFloat32: gguf_put(out, static_cast<float>(gguf_float_of(v))); return;
    case GgufValueType::kFloat64: gguf_put(out, gguf_float_of(v)); return;
    case GgufValueType::kBool: {
      const std::optional<bool> b = v.as_bool();
      gguf_put<uint8_t>(out, b ? (*b ? 1 : 0) : (gguf_integer_of<int64_t>(v) != 0 ? 1 : 0));
      return;
    }
    case GgufValueType::kString: {
      const std::string* s = v.as_string();
      gguf_put_string(out, s != nullptr ? *s : std::string());
      return;
    }
    case GgufValueType::kArray: {
      const std::vector<GgufValue>* items = v.as_array();
      const GgufValueType element_type = v.element_type();
      gguf_put<uint32_t>(out, static_cast<uint32_t>(element_type));
      gguf_put<uint64_t>(out, items != nullptr ? items->size() : 0);
      if (items == nullptr) return;
      for (const GgufValue& item : *items) gguf_put_payload(out, item, element_type);
      return;
    }
  }
  // An id outside the enum: written as a bare tag (tests use it to build bad files).
}

}  // namespace

void GgufWriter::set(const std::string& key, GgufValue value) {
  for (auto& [existing_key, existing_value] : metadata_) {
    if (existing_key == key) {
      existing_value = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(key, std::move(value));
}

Status GgufWriter::add_tensor(const std::string& name, TensorType type, std::vector<int64_t> ne,
                              std::vector<uint8_t> data) {
  const std::string subject = "tensor '" + name + "'";
  if (name.empty() || name.size() > kGgufMaxNameLength) {
    return invalid_argument(subject + ": a name must have 1.." + std::to_string(kGgufMaxNameLength) + " bytes");
  }
  for (const Tensor& t : tensors_) {
    if (t.name == name) return already_exists(subject + " was already added; give each tensor its own name");
  }
  std::optional<TensorTypeTraits> traits = tensor_type_traits(type);
  if (!traits) {
    return invalid_argument(subject + ": unknown type " + std::to_string(static_cast<uint32_t>(type)));
  }
  if (ne.empty() || ne.size() > static_cast<size_t>(kGgufMaxDims)) {
    return invalid_argument(subject + ": " + std::to_string(ne.size()) + " dimensions; pass 1.." +
                            std::to_string(kGgufMaxDims));
  }
  int64_t n_elements = 1;
  for (size_t d = 0; d < ne.size(); ++d) {
    if (ne[d] < 1 || n_elements > kGgufMaxTensorElements / ne[d]) {
      return invalid_argument(subject + ": ne[" + std::to_string(d) + "] = " + std::to_string(ne[d]) +
                              " must be at least 1 and the tensor at most " + std::to_string(kGgufMaxTensorElements) +
                              " elements");
    }
    n_elements *= ne[d];
  }
  if (ne[0] % traits->block_size != 0) {
    return invalid_argument(subject + ": ne[0] = " + std::to_string(ne[0]) + " is not a multiple of the " +
                            std::string(traits->name) + " block size " + std::to_string(traits->block_size));
  }
  const uint64_t expected = tensor_row_bytes(type, ne[0]) * static_cast<uint64_t>(n_elements / ne[0]);
  if (data.size() != expected) {
    return invalid_argument(subject + ": " + std::to_string(data.size()) + " bytes of data, but a " +
                            std::string(traits->name) + " tensor of this shape takes " + std::to_string(expected));
  }
  tensors_.push_back({name, type, std::move(ne), std::move(data)});
  return Status::ok();
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  // An invalid general.alignment is still written as given (tests build bad files that
  // way), but the layout then falls back to the default.
  uint32_t alignment = kGgufDefaultAlignment;
  for (const auto& [key, value] : metadata_) {
    if (key != "general.alignment" || value.type != GgufValueType::kUint32) continue;
    const std::optional<int64_t> a = value.as_int();
    if (a && *a > 0 && *a <= UINT32_MAX && std::has_single_bit(static_cast<uint64_t>(*a))) {
      alignment = static_cast<uint32_t>(*a);
    }
  }

  std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
  gguf_put<uint32_t>(&out, kGgufWriterVersion);
  gguf_put<uint64_t>(&out, tensors_.size());
  gguf_put<uint64_t>(&out, metadata_.size());
  for (const auto& [key, value] : metadata_) {
    gguf_put_string(&out, key);
    gguf_put<uint32_t>(&out, static_cast<uint32_t>(value.type));
    gguf_put_payload(&out, value, value.type);
  }

  std::vector<uint64_t> offsets;
  uint64_t next = 0;
  for (const Tensor& t : tensors_) {
    offsets.push_back(next);
    next = (next + t.data.size() + alignment - 1) / alignment * alignment;
  }
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    gguf_put_string(&out, t.name);
    gguf_put<uint32_t>(&out, static_cast<uint32_t>(t.ne.size()));
    for (int64_t n : t.ne) gguf_put<uint64_t>(&out, static_cast<uint64_t>(n));
    gguf_put<uint32_t>(&out, static_cast<uint32_t>(t.type));
    gguf_put<uint64_t>(&out, offsets[i]);
  }
  gguf_pad_to(&out, alignment);

  // Each tensor's data is followed by zeros up to the next multiple of the alignment.
  out.reserve(out.size() + next);
  for (const Tensor& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    gguf_pad_to(&out, alignment);
  }
  return out;
}

Status GgufWriter::write(const std::filesystem::path& path) const {
  const std::vector<uint8_t> bytes = to_bytes();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    return io_error(path.string() + ": cannot create: " + std::generic_category().message(errno));
  }
  const bool written = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  const int write_errno = errno;
  const bool closed = std::fclose(f) == 0;
  if (!written || !closed) {
    return io_error(path.string() + ": cannot write " + std::to_string(bytes.size()) +
                    " bytes: " + std::generic_category().message(written ? errno : write_errno) +
                    "; check the free space and permissions");
  }
  return Status::ok();
}

}  // namespace clusterd
