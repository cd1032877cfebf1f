// The content manifest of a GGUF file, so that a node without a copy can take slices
// of it from a peer and check every byte it receives: the SHA-256 of the whole file
// (its identity: a copy may live in the data dir as models/<sha256>.gguf), of the
// header (magic through the padding before the tensor data), and of each 1 MiB chunk
// of each tensor's data. Chunks, not whole tensors, so that a rank holding a few rows
// of a tensor fetches and checks those rows, not the tensor. JSON layout in
// docs/wire-formats.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "clusterd/common/crypto.h"
#include "clusterd/common/status.h"

namespace clusterd {

constexpr uint32_t kManifestVersion = 1;
constexpr uint64_t kManifestChunkBytes = 1u << 20;

struct ManifestTensor {
  std::string name;
  uint64_t offset = 0;  // file offset of the tensor's data
  uint64_t bytes = 0;
  std::vector<Digest> chunks;  // SHA-256 of each chunk_bytes piece of the data; the last may be shorter
};

struct ModelManifest {
  uint64_t file_bytes = 0;
  Digest file_sha256{};
  uint64_t header_bytes = 0;  // [0, header_bytes): everything before the tensor data
  Digest header_sha256{};
  uint64_t chunk_bytes = kManifestChunkBytes;
  std::vector<ManifestTensor> tensors;  // in the file's tensor order

  const ManifestTensor* find(const std::string& name) const;
  nlohmann::json to_json() const;
  // Checks the version, the sizes and that the chunk counts fit the tensor sizes.
  static Result<ModelManifest> from_json(const nlohmann::json& doc);
};

// Reads the GGUF file at `path` once, front to back (plain reads, so the page cache
// does not count against this process), and hashes it. `progress(done, total)` is
// called after each chunk. Errors name the file.
Result<ModelManifest> build_manifest(const std::filesystem::path& path,
                                     const std::function<void(uint64_t, uint64_t)>& progress = {});

// The chunk-aligned cover of bytes [begin, end) of `tensor`'s data: [first chunk's
// start, last chunk's end), clamped to the tensor.
std::pair<uint64_t, uint64_t> manifest_chunk_cover(const ModelManifest& manifest, const ManifestTensor& tensor,
                                                   uint64_t begin, uint64_t end);

// Checks the chunks of `tensor` that cover [begin, end) against `data`, the tensor's
// whole data (only the covered part is read). `source` names where the bytes came
// from in the error ("model x.gguf from node a: tensor blk.3.attn_q.weight: bytes
// [0, 1048576) do not match the manifest's SHA-256").
Status verify_tensor_chunks(const ModelManifest& manifest, const ManifestTensor& tensor, std::span<const uint8_t> data,
                            uint64_t begin, uint64_t end, const std::string& source);

}  // namespace clusterd
