// GgufValue: typed access to one metadata value.
#include <limits>

#include "clusterd/model/gguf.h"

namespace clusterd {

GgufValue GgufValue::array(GgufValueType element_type, std::vector<GgufValue> items) {
  (void)element_type;  // carried by the items themselves; see the header
  return {GgufValueType::kArray, std::move(items)};
}

std::optional<int64_t> GgufValue::as_int() const {
  if (const uint64_t* u = std::get_if<uint64_t>(&data)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(*u);
  }
  if (const int64_t* i = std::get_if<int64_t>(&data)) return *i;
  return std::nullopt;
}

std::optional<double> GgufValue::as_float() const {
  if (const double* d = std::get_if<double>(&data)) return *d;
  if (const uint64_t* u = std::get_if<uint64_t>(&data)) return static_cast<double>(*u);
  if (const int64_t* i = std::get_if<int64_t>(&data)) return static_cast<double>(*i);
  return std::nullopt;
}

std::optional<bool> GgufValue::as_bool() const {
  if (const bool* b = std::get_if<bool>(&data)) return *b;
  return std::nullopt;
}

const std::string* GgufValue::as_string() const { return std::get_if<std::string>(&data); }

const std::vector<GgufValue>* GgufValue::as_array() const { return std::get_if<std::vector<GgufValue>>(&data); }

GgufValueType GgufValue::element_type() const {
  const std::vector<GgufValue>* items = as_array();
  if (items == nullptr || items->empty()) return GgufValueType::kUint8;
  return items->front().type;
}

const char* gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8: return "uint8";
    case GgufValueType::kInt8: return "int8";
    case GgufValueType::kUint16: return "uint16";
    case GgufValueType::kInt16: return "int16";
    case GgufValueType::kUint32: return "uint32";
    case GgufValueType::kInt32: return "int32";
    case GgufValueType::kFloat32: return "float32";
    case GgufValueType::kBool: return "bool";
    case GgufValueType::kString: return "string";
    case GgufValueType::kArray: return "array";
    case GgufValueType::kUint64: return "uint64";
    case GgufValueType::kInt64: return "int64";
    case GgufValueType::kFloat64: return "float64";
  }
  return "unknown";
}

}  // namespace clusterd
