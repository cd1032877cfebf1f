#include "clusterd/model/manifest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "clusterd/model/gguf.h"

namespace clusterd {

namespace {

std::string digest_hex(const Digest& d) { return to_hex(d); }

bool digest_from_hex(const nlohmann::json& v, Digest& out) {
  if (!v.is_string()) return false;
  std::vector<uint8_t> bytes;
  if (!from_hex(v.get<std::string>(), bytes) || bytes.size() != out.size()) return false;
  std::copy(bytes.begin(), bytes.end(), out.begin());
  return true;
}

uint64_t chunk_count(uint64_t bytes, uint64_t chunk) { return bytes == 0 ? 0 : (bytes + chunk - 1) / chunk; }

// The whole-file hash, fed in file order.
class FileHash {
 public:
  FileHash() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void update(const uint8_t* p, size_t n) { EVP_DigestUpdate(ctx_.get(), p, n); }
  Digest finish() {
    Digest d{};
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_.get(), d.data(), &n);
    return d;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_;
};

}  // namespace

const ManifestTensor* ModelManifest::find(const std::string& name) const {
  for (const auto& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

nlohmann::json ModelManifest::to_json() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& t : tensors) {
    nlohmann::json chunks = nlohmann::json::array();
    for (const auto& c : t.chunks) chunks.push_back(digest_hex(c));
    list.push_back({{"name", t.name}, {"offset", t.offset}, {"bytes", t.bytes}, {"chunks", chunks}});
  }
  return {{"version", kManifestVersion},
          {"file_bytes", file_bytes},
          {"sha256", digest_hex(file_sha256)},
          {"header_bytes", header_bytes},
          {"header_sha256", digest_hex(header_sha256)},
          {"chunk_bytes", chunk_bytes},
          {"tensors", list}};
}

Result<ModelManifest> ModelManifest::from_json(const nlohmann::json& d) {
  try {
    if (d.at("version").get<uint32_t>() != kManifestVersion) {
      return invalid_argument("model manifest: version " + d.at("version").dump() + " is not supported (1 is)");
    }
    ModelManifest m;
    m.file_bytes = d.at("file_bytes").get<uint64_t>();
    m.header_bytes = d.at("header_bytes").get<uint64_t>();
    m.chunk_bytes = d.at("chunk_bytes").get<uint64_t>();
    if (!digest_from_hex(d.at("sha256"), m.file_sha256) || !digest_from_hex(d.at("header_sha256"), m.header_sha256)) {
      return invalid_argument("model manifest: sha256 and header_sha256 must be 64 hex characters");
    }
    if (m.chunk_bytes == 0 || m.header_bytes > m.file_bytes) {
      return invalid_argument("model manifest: chunk_bytes is 0 or the header is larger than the file");
    }
    for (const auto& t : d.at("tensors")) {
      ManifestTensor mt;
      mt.name = t.at("name").get<std::string>();
      mt.offset = t.at("offset").get<uint64_t>();
      mt.bytes = t.at("bytes").get<uint64_t>();
      if (mt.offset < m.header_bytes || mt.offset > m.file_bytes || mt.bytes > m.file_bytes - mt.offset) {
        return invalid_argument("model manifest: tensor " + mt.name + " lies outside the file's data");
      }
      const auto& chunks = t.at("chunks");
      if (!chunks.is_array() || chunks.size() != chunk_count(mt.bytes, m.chunk_bytes)) {
        return invalid_argument("model manifest: tensor " + mt.name + " has " + std::to_string(chunks.size()) +
                                " chunk hashes, its " + std::to_string(mt.bytes) + " bytes need " +
                                std::to_string(chunk_count(mt.bytes, m.chunk_bytes)));
      }
      mt.chunks.resize(chunks.size());
      for (size_t i = 0; i < chunks.size(); ++i) {
        if (!digest_from_hex(chunks[i], mt.chunks[i])) {
          return invalid_argument("model manifest: tensor " + mt.name + ": chunk hashes must be 64 hex characters");
        }
      }
      m.tensors.push_back(std::move(mt));
    }
    return m;
  } catch (const std::exception& e) {
    return invalid_argument(std::string("model manifest: ") + e.what());
  }
}

Result<ModelManifest> build_manifest(const std::filesystem::path& path,
                                     const std::function<void(uint64_t, uint64_t)>& progress) {
  auto file = GgufFile::open(path);  // validates, and gives the layout; only the header is paged in
  if (!file.is_ok()) return file.status();
  ModelManifest m;
  m.file_bytes = (*file)->file_size();
  m.header_bytes = (*file)->data_offset();
  struct Span {
    uint64_t begin, end;
    size_t tensor;
  };
  std::vector<Span> spans;  // every chunk of every tensor, in file order
  for (const auto& t : (*file)->tensors()) {
    ManifestTensor mt{t.name, (*file)->data_offset() + t.offset, t.size, {}};
    mt.chunks.resize(chunk_count(mt.bytes, m.chunk_bytes));
    for (uint64_t c = 0; c < mt.chunks.size(); ++c) {
      const uint64_t b = mt.offset + c * m.chunk_bytes;
      spans.push_back({b, std::min(b + m.chunk_bytes, mt.offset + mt.bytes), m.tensors.size()});
    }
    m.tensors.push_back(std::move(mt));
  }
  file->reset();
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });

  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error(path.string() + ": cannot open: " + std::strerror(errno));
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::vector<uint8_t> buf(m.chunk_bytes);
  FileHash whole;
  FileHash header;  // the first header_bytes of the same reads
  uint64_t pos = 0;
  // Reads [pos, end) in chunk-sized pieces into the whole-file hash; the last piece stays in buf.
  auto read_to = [&](uint64_t end) -> Status {
    while (pos < end) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(end - pos, buf.size()));
      size_t got = 0;
      while (got < n) {
        const ssize_t r = ::pread(fd, buf.data() + got, n - got, static_cast<off_t>(pos + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
          return io_error(path.string() + ": read failed at byte " + std::to_string(pos + got) + ": " +
                          (r == 0 ? std::string("unexpected end of file; was it changed while loading?")
                                  : std::string(std::strerror(errno))));
        }
        got += static_cast<size_t>(r);
      }
      whole.update(buf.data(), n);
      if (pos < m.header_bytes)
        header.update(buf.data(), static_cast<size_t>(std::min<uint64_t>(n, m.header_bytes - pos)));
      pos += n;
    }
    return Status::ok();
  };
  Status status;
  std::vector<uint64_t> next_chunk(m.tensors.size(), 0);
  for (const Span& s : spans) {
    if (status = read_to(s.begin); !status.is_ok()) break;
    if (status = read_to(s.end); !status.is_ok()) break;  // one piece: chunks are at most buf.size()
    ManifestTensor& t = m.tensors[s.tensor];
    t.chunks[next_chunk[s.tensor]++] = sha256(std::span<const uint8_t>(buf.data(), s.end - s.begin));
    if (progress) progress(pos, m.file_bytes);
  }
  if (status.is_ok()) status = read_to(m.file_bytes);
  ::close(fd);
  if (!status.is_ok()) return status;
  m.file_sha256 = whole.finish();
  m.header_sha256 = header.finish();
  return m;
}

std::pair<uint64_t, uint64_t> manifest_chunk_cover(const ModelManifest& m, const ManifestTensor& t, uint64_t begin,
                                                   uint64_t end) {
  end = std::min(end, t.bytes);
  begin = std::min(begin, end);
  const uint64_t first = begin / m.chunk_bytes * m.chunk_bytes;
  const uint64_t last = std::min(t.bytes, (end + m.chunk_bytes - 1) / m.chunk_bytes * m.chunk_bytes);
  return {first, last};
}

Status verify_tensor_chunks(const ModelManifest& m, const ManifestTensor& t, std::span<const uint8_t> data,
                            uint64_t begin, uint64_t end, const std::string& source) {
  if (data.size() != t.bytes) {
    return invalid_argument(source + ": tensor " + t.name + " has " + std::to_string(data.size()) +
                            " bytes, the manifest says " + std::to_string(t.bytes));
  }
  auto [first, last] = manifest_chunk_cover(m, t, begin, end);
  for (uint64_t b = first; b < last; b += m.chunk_bytes) {
    const uint64_t e = std::min(b + m.chunk_bytes, t.bytes);
    const Digest got = sha256(data.subspan(b, e - b));
    const Digest& want = t.chunks[b / m.chunk_bytes];
    if (!constant_time_equal(got, want)) {
      return invalid_argument(source + ": tensor " + t.name + ": bytes [" + std::to_string(b) + ", " +
                              std::to_string(e) + ") do not match the manifest's SHA-256 (got " +
                              to_hex(got).substr(0, 16) + "…, expected " + to_hex(want).substr(0, 16) +
                              "…); the copy differs from the coordinator's file");
    }
  }
  return Status::ok();
}

}  // namespace clusterd
