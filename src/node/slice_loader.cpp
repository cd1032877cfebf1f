// open_model_for_shard: a local copy checked against the manifest, else the shard's
// bytes streamed from the coordinator into a sparse image of the file.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "clusterd/engine/weights.h"
#include "clusterd/node/slices.h"

namespace clusterd {

namespace {

constexpr uint64_t kFetchStepBytes = 16u << 20;  // per request, so progress moves

// One tensor's part of the shard, with the manifest entry that covers it.
struct ShardPiece {
  const GgufTensorInfo* info;
  const ManifestTensor* manifest;
  uint64_t begin, end;  // chunk-aligned, in the tensor's data
};

// Pairs the file's tensors with the manifest's and covers the shard's ranges with
// whole chunks. Errors when the two disagree on where a tensor lies.
Result<std::vector<ShardPiece>> shard_pieces(const Model& model, const ModelManifest& m, const Shard& shard,
                                             const std::string& source) {
  std::vector<ShardPiece> pieces;
  for (const TensorByteRange& r : shard_byte_ranges(*model.file, model.params, shard)) {
    const GgufTensorInfo* info = model.file->find_tensor(r.tensor);
    const ManifestTensor* mt = m.find(r.tensor);
    if (!info || !mt || mt->offset != model.file->data_offset() + info->offset || mt->bytes != info->size) {
      return invalid_argument(source + ": tensor " + r.tensor + " is not where the coordinator's manifest puts it");
    }
    auto [b, e] = manifest_chunk_cover(m, *mt, r.begin, r.end);
    pieces.push_back({info, mt, b, e});
  }
  return pieces;
}

uint64_t total_bytes(const std::vector<ShardPiece>& pieces) {
  uint64_t n = 0;
  for (const auto& p : pieces) n += p.end - p.begin;
  return n;
}

Status read_file_bytes(const std::filesystem::path& path, uint64_t n, std::vector<uint8_t>& out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error(path.string() + ": cannot open: " + std::strerror(errno));
  out.resize(n);
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, out.data() + got, n - got, static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  ::close(fd);
  if (got < n) return io_error(path.string() + ": short read of the header");
  return Status::ok();
}

// A local copy at `path`, if its size, header and shard chunks match the manifest.
Result<std::unique_ptr<Model>> open_local_copy(const std::filesystem::path& path, const ModelManifest& m,
                                               const Shard& shard, const std::function<void(double)>& progress,
                                               uint64_t* checked) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return not_found(path.string() + ": no such file");
  if (size != m.file_bytes) {
    return invalid_argument(path.string() + " has " + std::to_string(size) + " bytes, the coordinator's file " +
                            std::to_string(m.file_bytes));
  }
  std::vector<uint8_t> header;
  if (Status s = read_file_bytes(path, m.header_bytes, header); !s.is_ok()) return s;
  if (!constant_time_equal(sha256(header), m.header_sha256)) {
    return invalid_argument(path.string() + ": its header differs from the coordinator's file");
  }
  auto model = Model::open(path);
  if (!model.is_ok()) return model.status();
  auto pieces = shard_pieces(**model, m, shard, path.string());
  if (!pieces.is_ok()) return pieces.status();
  const uint64_t total = std::max<uint64_t>(1, total_bytes(*pieces));
  uint64_t done = 0;
  for (const ShardPiece& p : *pieces) {
    Status s = verify_tensor_chunks(m, *p.manifest, (*model)->file->tensor_data(*p.info), p.begin, p.end,
                                    "local copy " + path.string());
    if (!s.is_ok()) return s;
    done += p.end - p.begin;
    if (progress) progress(static_cast<double>(done) / static_cast<double>(total));
  }
  *checked = done;
  return model;
}

// A private anonymous mapping the size of the file: pages that are never written take
// no memory, so the image holds the header and the shard's bytes only.
Result<std::shared_ptr<uint8_t>> sparse_image(uint64_t bytes) {
  const size_t n = static_cast<size_t>(std::max<uint64_t>(bytes, 1));
  void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    return io_error("cannot reserve " + std::to_string(bytes) +
                    " bytes of address space for the model's slices: " + std::strerror(errno));
  }
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [n](uint8_t* q) { ::munmap(q, n); });
}

Result<std::unique_ptr<Model>> stream_slices(SliceClient& client, const ModelSource& source, const ModelManifest& m,
                                             const Shard& shard, const std::function<void(double)>& progress,
                                             uint64_t* fetched) {
  const std::string from = "model " + source.path + " from node " + source.coordinator;
  auto image = sparse_image(m.file_bytes);
  if (!image.is_ok()) return image.status();
  uint8_t* base = image->get();
  if (Status s = client.read(0, std::span(base, m.header_bytes)); !s.is_ok()) return s;
  if (!constant_time_equal(sha256(std::span<const uint8_t>(base, m.header_bytes)), m.header_sha256)) {
    return invalid_argument(from + ": the header does not match the manifest's SHA-256");
  }
  auto file = GgufFile::parse(std::span<const uint8_t>(base, m.file_bytes), from, *image, /*discardable=*/true);
  if (!file.is_ok()) return file.status();
  auto model = Model::from_file(std::move(*file));
  if (!model.is_ok()) return model.status();
  auto pieces = shard_pieces(**model, m, shard, from);
  if (!pieces.is_ok()) return pieces.status();
  const uint64_t total = std::max<uint64_t>(1, total_bytes(*pieces));
  uint64_t done = 0;
  for (const ShardPiece& p : *pieces) {
    for (uint64_t b = p.begin; b < p.end; b += kFetchStepBytes) {
      const uint64_t e = std::min(p.end, b + kFetchStepBytes);
      if (Status s = client.read(p.manifest->offset + b, std::span(base + p.manifest->offset + b, e - b)); !s.is_ok()) {
        return s;
      }
      done += e - b;
      if (progress) progress(static_cast<double>(done) / static_cast<double>(total));
    }
    Status s = verify_tensor_chunks(m, *p.manifest, (*model)->file->tensor_data(*p.info), p.begin, p.end, from);
    if (!s.is_ok()) return s;
  }
  *fetched = done;
  return model;
}

}  // namespace

Result<std::unique_ptr<Model>> open_model_for_shard(const ModelSource& source, const Shard& shard,
                                                    const std::filesystem::path& data_dir, const std::string& key,
                                                    const std::function<void(double)>& progress,
                                                    SliceLoadReport* report) {
  SliceLoadReport local_report;
  if (!report) report = &local_report;
  if (source.sha256.empty()) {  // no manifest: the path must hold the same file, as before slices
    report->from = "local copy " + source.path;
    return Model::open(source.path);
  }
  auto client = SliceClient::connect(source.host, source.port, key, source.epoch);
  if (!client.is_ok()) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(source.path, ec)) {  // as before manifests: trust the path
      spdlog::warn("model {}: cannot reach the slice server of node {} ({}); using {} without checking it", source.path,
                   source.coordinator, client.status().message(), source.path);
      report->from = "local copy " + source.path + " (unchecked)";
      return Model::open(source.path);
    }
    return unavailable("cannot reach the slice server of node " + source.coordinator + ": " +
                       client.status().message());
  }
  auto doc = (*client)->manifest(source.manifest_sha256);
  if (!doc.is_ok()) return doc.status();
  const ModelManifest& m = doc->manifest;
  if (to_hex(m.file_sha256) != source.sha256) {
    return invalid_argument("the manifest from node " + source.coordinator + " is for another file (SHA-256 " +
                            to_hex(m.file_sha256).substr(0, 16) + "…, the load spec says " +
                            source.sha256.substr(0, 16) + "…)");
  }
  const std::filesystem::path candidates[] = {source.path, data_dir / "models" / (source.sha256 + ".gguf")};
  for (const auto& path : candidates) {
    auto local = open_local_copy(path, m, shard, progress, &report->bytes);
    if (local.is_ok()) {
      report->from = "local copy " + path.string();
      return local;
    }
    if (local.status().code() == StatusCode::kNotFound) continue;
    spdlog::warn("model {}: not using {}: {}", source.sha256.substr(0, 12), path.string(), local.status().message());
  }
  spdlog::info("model {}: no local copy; streaming this rank's slices from {}", source.path, source.coordinator);
  auto model = stream_slices(**client, source, m, shard, progress, &report->bytes);
  if (model.is_ok()) report->from = "streamed from node " + source.coordinator;
  return model;
}

}  // namespace clusterd
