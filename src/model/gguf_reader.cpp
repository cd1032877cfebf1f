// GgufFile: a validating GGUF reader. Every count and length in the file is checked
// against the bytes that remain before anything is allocated, so a hostile file gets
// an error that names the key or tensor and the byte offset, never a crash.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <numeric>
#include <system_error>

#include "clusterd/model/gguf.h"

namespace clusterd {
namespace {

static_assert(std::endian::native == std::endian::little, "the GGUF reader loads little-endian fields as they are");

constexpr uint8_t kGgufMagic[4] = {'G', 'G', 'U', 'F'};
// Smallest possible encodings, used to bound counts before allocating.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;                  // key length, value type, a one-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // name length, n_dims, ne[0], type, offset

const char* const kFixCorrupt = "; the file is truncated or corrupt: download or convert it again";

bool gguf_is_value_type(uint32_t id) { return id <= static_cast<uint32_t>(GgufValueType::kFloat64); }

// Bytes one value of `type` takes at the least (an array: its element type and count).
uint64_t gguf_min_value_bytes(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool: return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16: return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32: return 4;
    case GgufValueType::kString:
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64: return 8;
    case GgufValueType::kArray: return 4 + 8;
  }
  return 1;
}

std::string gguf_quote(const std::string& s) { return "'" + s + "'"; }

// Reads the header, metadata and tensor infos of one image, front to back.
class GgufParser {
 public:
  GgufParser(std::span<const uint8_t> bytes, const std::string& file) : bytes_(bytes), file_(file) {}

  Status parse_header(uint32_t* version, uint64_t* n_tensors, uint64_t* n_kv);
  Status parse_metadata(uint64_t n_kv, std::map<std::string, GgufValue>* metadata, uint32_t* alignment);
  Status parse_tensor_infos(uint64_t n_tensors, std::vector<GgufTensorInfo>* tensors,
                            std::map<std::string, size_t>* index);
  uint64_t position() const { return pos_; }

 private:
  uint64_t remaining() const { return bytes_.size() - pos_; }
  // "<file>: <subject>: <detail> (at byte N)<fix>".
  Status error(uint64_t at, const std::string& subject, const std::string& detail,
               const char* fix = kFixCorrupt) const {
    return invalid_argument(file_ + ": " + subject + ": " + detail + " (at byte " + std::to_string(at) + ")" + fix);
  }
  // Fails unless `n` more bytes exist; `what` completes "while reading ...".
  Status need(uint64_t n, const std::string& what) const;
  template <typename T>
  T take() {
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  template <typename T>
  Status read(T* out, const std::string& what) {
    if (Status s = need(sizeof(T), what); !s.is_ok()) return s;
    *out = take<T>();
    return Status::ok();
  }
  // `subject()` names what holds the string ("key 'x'"); called only to build an error.
  template <typename Subject>
  Status read_string(std::string* out, uint64_t max_length, const Subject& subject, const std::string& what);
  template <typename Wire, typename Stored>
  Status read_scalar(const std::string& what, GgufValue* out) {
    Wire v{};
    if (Status s = read(&v, what); !s.is_ok()) return s;
    out->data = static_cast<Stored>(v);
    return Status::ok();
  }
  // `what` completes "while reading ..." for every value under `key`.
  Status read_value(GgufValueType type, int depth, const std::string& key, const std::string& what, GgufValue* out);
  Status read_array(int depth, const std::string& key, const std::string& what, GgufValue* out);

  std::span<const uint8_t> bytes_;
  const std::string& file_;
  uint64_t pos_ = 0;
  uint64_t n_values_ = 0;  // metadata values so far, against kGgufMaxMetadataValues
};

Status GgufParser::need(uint64_t n, const std::string& what) const {
  if (n <= remaining()) return Status::ok();
  return invalid_argument(file_ + ": truncated at byte " + std::to_string(pos_) + " while reading " + what +
                          " (needs " + std::to_string(n) + " bytes, " + std::to_string(remaining()) + " remain)" +
                          kFixCorrupt);
}

template <typename Subject>
Status GgufParser::read_string(std::string* out, uint64_t max_length, const Subject& subject, const std::string& what) {
  const uint64_t at = pos_;
  uint64_t length = 0;
  if (Status s = read(&length, what); !s.is_ok()) return s;
  if (length > max_length) {
    return error(
        at, subject(),
        "string of " + std::to_string(length) + " bytes is longer than the limit of " + std::to_string(max_length));
  }
  if (length > remaining()) {
    return error(at, subject(),
                 "string of " + std::to_string(length) + " bytes runs past the end of the file (" +
                     std::to_string(remaining()) + " bytes remain)");
  }
  out->assign(reinterpret_cast<const char*>(bytes_.data() + pos_), length);
  pos_ += length;
  return Status::ok();
}

Status GgufParser::parse_header(uint32_t* version, uint64_t* n_tensors, uint64_t* n_kv) {
  if (Status s = need(4, "the magic"); !s.is_ok()) return s;
  if (std::memcmp(bytes_.data(), kGgufMagic, 4) != 0) {
    char shown[5] = {};
    char hex[16];
    std::snprintf(hex, sizeof(hex), "%02x %02x %02x %02x", bytes_[0], bytes_[1], bytes_[2], bytes_[3]);
    for (int i = 0; i < 4; ++i) shown[i] = (bytes_[i] >= 0x20 && bytes_[i] < 0x7f) ? char(bytes_[i]) : '.';
    return invalid_argument(file_ + ": not a GGUF file (magic '" + shown + "' = " + hex +
                            " at byte 0, expected 'GGUF'); pass a .gguf model file");
  }
  pos_ = 4;
  if (Status s = read(version, "the version"); !s.is_ok()) return s;
  if (*version != 2 && *version != 3) {
    const uint32_t swapped = __builtin_bswap32(*version);
    if (swapped == 2 || swapped == 3) {
      return invalid_argument(
          file_ + ": GGUF version " + std::to_string(*version) +
          " is not supported (2 and 3 are): this is a big-endian file (version at byte 4); use a little-endian one");
    }
    const char* fix =
        *version < 2 ? "; convert the model again with a current llama.cpp" : "; this file needs a newer clusterd";
    return invalid_argument(file_ + ": GGUF version " + std::to_string(*version) + " is not supported (2 and 3 are)" +
                            fix + " (version at byte 4)");
  }
  if (Status s = read(n_tensors, "the tensor count"); !s.is_ok()) return s;
  if (Status s = read(n_kv, "the metadata count"); !s.is_ok()) return s;
  // Bound both counts by the bytes that remain, so that no reserve() below is absurd.
  if (*n_kv > remaining() / kMinKvBytes) {
    return error(16, "header",
                 std::to_string(*n_kv) + " metadata entries cannot fit in the " + std::to_string(remaining()) +
                     " bytes that remain");
  }
  if (*n_tensors > remaining() / kMinTensorInfoBytes) {
    return error(8, "header",
                 std::to_string(*n_tensors) + " tensors cannot fit in the " + std::to_string(remaining()) +
                     " bytes that remain");
  }
  return Status::ok();
}

Status GgufParser::read_value(GgufValueType type, int depth, const std::string& key, const std::string& what,
                              GgufValue* out) {
  out->type = type;
  switch (type) {
    case GgufValueType::kUint8: return read_scalar<uint8_t, uint64_t>(what, out);
    case GgufValueType::kInt8: return read_scalar<int8_t, int64_t>(what, out);
    case GgufValueType::kUint16: return read_scalar<uint16_t, uint64_t>(what, out);
    case GgufValueType::kInt16: return read_scalar<int16_t, int64_t>(what, out);
    case GgufValueType::kUint32: return read_scalar<uint32_t, uint64_t>(what, out);
    case GgufValueType::kInt32: return read_scalar<int32_t, int64_t>(what, out);
    case GgufValueType::kUint64: return read_scalar<uint64_t, uint64_t>(what, out);
    case GgufValueType::kInt64: return read_scalar<int64_t, int64_t>(what, out);
    case GgufValueType::kFloat32: return read_scalar<float, double>(what, out);
    case GgufValueType::kFloat64: return read_scalar<double, double>(what, out);
    case GgufValueType::kBool: return read_scalar<uint8_t, bool>(what, out);  // any non-zero byte is true
    case GgufValueType::kString: {
      std::string v;
      if (Status s = read_string(
              &v, std::numeric_limits<uint64_t>::max(), [&] { return "key " + gguf_quote(key); }, what);
          !s.is_ok()) {
        return s;
      }
      out->data = std::move(v);
      return Status::ok();
    }
    case GgufValueType::kArray: return read_array(depth, key, what, out);
  }
  return Status::ok();
}

Status GgufParser::read_array(int depth, const std::string& key, const std::string& what, GgufValue* out) {
  const uint64_t at = pos_;
  auto subject = [&] { return "key " + gguf_quote(key); };
  if (depth >= kGgufMaxArrayDepth) {
    return error(at, subject(), "arrays nested more than " + std::to_string(kGgufMaxArrayDepth) + " levels deep");
  }
  uint32_t element_id = 0;
  uint64_t count = 0;
  if (Status s = read(&element_id, what); !s.is_ok()) return s;
  if (!gguf_is_value_type(element_id)) {
    return error(at, subject(), "array of unknown value type " + std::to_string(element_id));
  }
  const auto element_type = static_cast<GgufValueType>(element_id);
  if (Status s = read(&count, what); !s.is_ok()) return s;
  const uint64_t min_bytes = gguf_min_value_bytes(element_type);
  if (count > remaining() / min_bytes) {
    return error(at, subject(),
                 "array of " + std::to_string(count) + " " + gguf_value_type_name(element_type) +
                     " elements of at least " + std::to_string(min_bytes) + (min_bytes == 1 ? " byte" : " bytes") +
                     " each cannot fit in the " + std::to_string(remaining()) + " bytes that remain");
  }
  if (count > kGgufMaxMetadataValues - n_values_) {
    return error(at, subject(),
                 "array of " + std::to_string(count) + " elements takes the metadata past " +
                     std::to_string(kGgufMaxMetadataValues) + " values, more than any model needs");
  }
  n_values_ += count;
  std::vector<GgufValue> items(count);
  for (GgufValue& item : items) {
    if (Status s = read_value(element_type, depth + 1, key, what, &item); !s.is_ok()) return s;
  }
  out->type = GgufValueType::kArray;
  out->data = std::move(items);
  return Status::ok();
}

Status GgufParser::parse_metadata(uint64_t n_kv, std::map<std::string, GgufValue>* metadata, uint32_t* alignment) {
  std::map<std::string, uint64_t> key_at;  // where each key starts, for duplicate errors
  for (uint64_t i = 0; i < n_kv; ++i) {
    const uint64_t at = pos_;
    std::string key;
    if (Status s = read_string(
            &key, kGgufMaxNameLength, [&] { return "metadata entry " + std::to_string(i); },
            "the key of metadata entry " + std::to_string(i));
        !s.is_ok()) {
      return s;
    }
    uint32_t type_id = 0;
    if (Status s = read(&type_id, "the value type of key " + gguf_quote(key)); !s.is_ok()) return s;
    if (!gguf_is_value_type(type_id)) {
      return error(at, "key " + gguf_quote(key), "unknown value type " + std::to_string(type_id));
    }
    if (n_values_ >= kGgufMaxMetadataValues) {
      return error(at, "key " + gguf_quote(key),
                   "more than " + std::to_string(kGgufMaxMetadataValues) + " metadata values");
    }
    ++n_values_;
    const uint64_t value_at = pos_;
    GgufValue value;
    const std::string what = "the value of key " + gguf_quote(key);
    if (Status s = read_value(static_cast<GgufValueType>(type_id), 0, key, what, &value); !s.is_ok()) return s;
    auto [first, inserted] = key_at.emplace(key, at);
    if (!inserted) {
      return error(at, "key " + gguf_quote(key), "duplicate key, first at byte " + std::to_string(first->second));
    }
    if (key == "general.alignment") {
      if (value.type != GgufValueType::kUint32) {
        return error(value_at, "key 'general.alignment'",
                     "must be of type uint32, not " + std::string(gguf_value_type_name(value.type)));
      }
      const uint64_t a = std::get<uint64_t>(value.data);
      if (!std::has_single_bit(a)) {
        return error(value_at, "key 'general.alignment'",
                     "alignment " + std::to_string(a) + " is not a non-zero power of two");
      }
      *alignment = static_cast<uint32_t>(a);
    }
    metadata->emplace(std::move(key), std::move(value));
  }
  return Status::ok();
}

Status GgufParser::parse_tensor_infos(uint64_t n_tensors, std::vector<GgufTensorInfo>* tensors,
                                      std::map<std::string, size_t>* index) {
  tensors->reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const uint64_t at = pos_;
    GgufTensorInfo t;
    if (Status s = read_string(
            &t.name, kGgufMaxNameLength, [&] { return "tensor " + std::to_string(i); },
            "the name of tensor " + std::to_string(i));
        !s.is_ok()) {
      return s;
    }
    const std::string subject = "tensor " + gguf_quote(t.name);
    const std::string what = "the info of tensor " + gguf_quote(t.name);
    uint32_t n_dims = 0;
    if (Status s = read(&n_dims, what); !s.is_ok()) return s;
    if (n_dims < 1 || n_dims > kGgufMaxDims) {
      return error(at, subject, "n_dims " + std::to_string(n_dims) + " is outside 1.." + std::to_string(kGgufMaxDims));
    }
    t.n_dims = static_cast<int>(n_dims);
    int64_t n_elements = 1;
    for (int d = 0; d < t.n_dims; ++d) {
      uint64_t ne = 0;
      if (Status s = read(&ne, what); !s.is_ok()) return s;
      if (ne == 0 || ne > static_cast<uint64_t>(kGgufMaxTensorElements)) {
        const std::string shown = ne > uint64_t(std::numeric_limits<int64_t>::max())
                                      ? std::to_string(static_cast<int64_t>(ne))
                                      : std::to_string(ne);
        return error(
            at, subject,
            "ne[" + std::to_string(d) + "] = " + shown + " is not in 1.." + std::to_string(kGgufMaxTensorElements));
      }
      t.ne[d] = static_cast<int64_t>(ne);
      // Both factors are at most 2^50, so the product is checked before it could overflow.
      if (n_elements > kGgufMaxTensorElements / t.ne[d]) {
        return error(at, subject, "more than " + std::to_string(kGgufMaxTensorElements) + " elements");
      }
      n_elements *= t.ne[d];
    }
    uint32_t type_id = 0;
    if (Status s = read(&type_id, what); !s.is_ok()) return s;
    std::optional<TensorTypeTraits> traits = tensor_type_traits(type_id);
    if (!traits) {
      return error(at, subject, "unknown type " + std::to_string(type_id),
                   "; it is a ggml type this build does not know: a newer clusterd may read it");
    }
    t.type = static_cast<TensorType>(type_id);
    if (t.ne[0] % traits->block_size != 0) {
      return error(at, subject,
                   "ne[0] = " + std::to_string(t.ne[0]) + " is not a multiple of the " + std::string(traits->name) +
                       " block size " + std::to_string(traits->block_size));
    }
    if (Status s = read(&t.offset, what); !s.is_ok()) return s;
    t.size = tensor_row_bytes(t.type, t.ne[0]) * static_cast<uint64_t>(n_elements / t.ne[0]);
    auto [first, inserted] = index->emplace(t.name, tensors->size());
    if (!inserted) {
      return error(
          at, "tensor " + gguf_quote(t.name),
          "duplicate tensor name (tensor " + std::to_string(i) + " and tensor " + std::to_string(first->second) + ")");
    }
    tensors->push_back(std::move(t));
  }
  return Status::ok();
}

// Checks that every tensor's data is aligned, inside the file and apart from the others.
Status gguf_check_tensor_data(const std::string& file, const std::vector<GgufTensorInfo>& tensors, uint64_t data_offset,
                              uint64_t file_size, uint32_t alignment) {
  auto fail = [&](const GgufTensorInfo& t, const std::string& detail) {
    const uint64_t at = t.offset > UINT64_MAX - data_offset ? UINT64_MAX : data_offset + t.offset;
    return invalid_argument(file + ": tensor " + gguf_quote(t.name) + ": " + detail + " (at byte " +
                            std::to_string(at) + ")" + kFixCorrupt);
  };
  const uint64_t data_bytes = data_offset <= file_size ? file_size - data_offset : 0;
  for (const GgufTensorInfo& t : tensors) {
    if (t.offset % alignment != 0) {
      return fail(t, "data offset " + std::to_string(t.offset) + " is not a multiple of the " +
                         std::to_string(alignment) + "-byte alignment");
    }
    if (t.offset > data_bytes || t.size > data_bytes - t.offset) {
      return fail(t, std::to_string(t.size) + " bytes of data at data offset " + std::to_string(t.offset) +
                         " run past the end of the " + std::to_string(file_size) +
                         "-byte file, whose data section starts at byte " + std::to_string(data_offset));
    }
  }
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return tensors[a].offset < tensors[b].offset; });
  for (size_t i = 1; i < order.size(); ++i) {
    const GgufTensorInfo& before = tensors[order[i - 1]];
    const GgufTensorInfo& after = tensors[order[i]];
    if (after.offset < before.offset + before.size) {
      return fail(after, "data overlaps tensor " + gguf_quote(before.name) + ", which holds bytes " +
                             std::to_string(data_offset + before.offset) + ".." +
                             std::to_string(data_offset + before.offset + before.size));
    }
  }
  return Status::ok();
}

}  // namespace

Result<std::unique_ptr<GgufFile>> GgufFile::parse(std::span<const uint8_t> bytes, const std::string& name) {
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->name_ = name;
  file->bytes_ = bytes;
  GgufParser parser(bytes, file->name_);
  uint64_t n_tensors = 0;
  uint64_t n_kv = 0;
  if (Status s = parser.parse_header(&file->version_, &n_tensors, &n_kv); !s.is_ok()) return s;
  if (Status s = parser.parse_metadata(n_kv, &file->metadata_, &file->alignment_); !s.is_ok()) return s;
  if (Status s = parser.parse_tensor_infos(n_tensors, &file->tensors_, &file->tensor_index_); !s.is_ok()) return s;
  // A file without tensors may end right after its infos, before the padding.
  const uint64_t a = file->alignment_;
  file->data_offset_ = (parser.position() + a - 1) / a * a;
  if (Status s =
          gguf_check_tensor_data(file->name_, file->tensors_, file->data_offset_, bytes.size(), file->alignment_);
      !s.is_ok()) {
    return s;
  }
  return file;
}

Result<std::unique_ptr<GgufFile>> GgufFile::parse(std::span<const uint8_t> bytes, const std::string& name,
                                                  std::shared_ptr<const void> owner, bool discardable) {
  Result<std::unique_ptr<GgufFile>> parsed = parse(bytes, name);
  if (parsed.is_ok()) {
    parsed.value()->owner_ = std::move(owner);
    parsed.value()->discardable_ = discardable;
  }
  return parsed;
}

Result<std::unique_ptr<GgufFile>> GgufFile::open(const std::filesystem::path& path) {
  const std::string name = path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string reason = std::generic_category().message(err);
    if (err == ENOENT) return not_found(name + ": cannot open: " + reason + "; check the model path");
    return io_error(name + ": cannot open: " + reason);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return invalid_argument(name + ": not a regular file; pass the path of a .gguf model file");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* map = nullptr;
  if (size > 0) {
    map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      const std::string reason = std::generic_category().message(errno);
      ::close(fd);
      return io_error(name + ": cannot map " + std::to_string(size) + " bytes: " + reason);
    }
  }
  ::close(fd);  // the mapping keeps the file open
  std::span<const uint8_t> bytes(static_cast<const uint8_t*>(map), size);
  Result<std::unique_ptr<GgufFile>> parsed = parse(bytes, name);
  if (!parsed.is_ok()) {
    if (map != nullptr) ::munmap(map, size);
    return parsed;
  }
  parsed.value()->map_ = map;
  parsed.value()->map_size_ = size;
  return parsed;
}

GgufFile::~GgufFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

namespace {

// MADV_DONTNEED on the whole pages of `bytes` that lie inside [base, base + size).
void drop_pages(std::span<const uint8_t> bytes, const uint8_t* base, size_t size) {
  if (bytes.empty() || base == nullptr) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  uintptr_t begin = std::max(reinterpret_cast<uintptr_t>(bytes.data()), reinterpret_cast<uintptr_t>(base));
  uintptr_t end =
      std::min(reinterpret_cast<uintptr_t>(bytes.data() + bytes.size()), reinterpret_cast<uintptr_t>(base) + size);
  begin = (begin + page - 1) / page * page;
  end = end / page * page;
  if (begin < end) (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace

void GgufFile::release(std::span<const uint8_t> bytes) const {
  // Read-only private pages of a mapped file were never written, so dropping them loses
  // nothing.
  if (map_ != nullptr) drop_pages(bytes, static_cast<const uint8_t*>(map_), map_size_);
}

void GgufFile::discard(std::span<const uint8_t> bytes) const {
  if (map_ != nullptr) {
    release(bytes);
  } else if (discardable_) {
    drop_pages(bytes, bytes_.data(), bytes_.size());
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::span<const uint8_t> GgufFile::tensor_data(const GgufTensorInfo& tensor) const {
  // Checked again so that an info from another file cannot reach outside this mapping.
  const uint64_t data_bytes = data_offset_ <= bytes_.size() ? bytes_.size() - data_offset_ : 0;
  if (tensor.offset > data_bytes || tensor.size > data_bytes - tensor.offset) return {};
  return bytes_.subspan(data_offset_ + tensor.offset, tensor.size);
}

}  // namespace clusterd
