// Slice streaming: a rank without a copy of the model file takes the bytes its shard
// needs from the coordinator and checks each chunk against the model's manifest.
// The slice link is TCP with the data link's frames (collective/data_frame.h, ops
// slice_*), authenticated on the cluster key and bound to the load's epoch; the
// coordinator serves it on a port of its own for the length of one load. Wire format
// in docs/wire-formats.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "clusterd/common/status.h"
#include "clusterd/engine/model.h"
#include "clusterd/engine/shard.h"
#include "clusterd/model/manifest.h"

namespace clusterd {

constexpr uint32_t kSliceDataPiece = 4u << 20;          // bytes per slice_data frame
constexpr uint64_t kSliceMaxRequestBytes = 1ull << 30;  // per byte-range request

// A model's manifest as the coordinator sends it: the JSON text and its SHA-256 (the
// load spec carries the hash, so the text can come over the slice link).
struct ManifestDocument {
  ModelManifest manifest;
  std::string text;
  std::string sha256;  // hex, of `text`

  static ManifestDocument of(ModelManifest manifest);
};

// Serves one model file to the ranks of one load.
class SliceServer {
 public:
  // Listens on 0.0.0.0:`port` (0: any free port) and serves `path` to clients that
  // prove they hold `key` and name `epoch`.
  static Result<std::unique_ptr<SliceServer>> start(const std::filesystem::path& path,
                                                    std::shared_ptr<const ManifestDocument> manifest, std::string key,
                                                    uint64_t epoch, uint16_t port = 0);
  // Stops listening, drops the clients, joins the threads.
  ~SliceServer();

  uint16_t port() const { return port_; }
  uint64_t bytes_served() const { return bytes_served_; }

 private:
  SliceServer() = default;
  void accept_loop();
  void serve(int fd);

  std::filesystem::path path_;
  std::shared_ptr<const ManifestDocument> manifest_;
  std::string key_;
  uint64_t epoch_ = 0;
  int listen_fd_ = -1;
  int file_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> bytes_served_{0};
  std::thread acceptor_;
  std::mutex clients_mu_;
  std::vector<int> client_fds_;
  std::vector<std::thread> clients_;
};

// One authenticated connection to a SliceServer; requests run one at a time.
class SliceClient {
 public:
  // Connects and runs the handshake; `timeout_ms` bounds every read and write.
  static Result<std::unique_ptr<SliceClient>> connect(const std::string& host, uint16_t port, const std::string& key,
                                                      uint64_t epoch, int timeout_ms = 30000);
  ~SliceClient();

  // The manifest's JSON text, checked against `sha256` (hex).
  Result<ManifestDocument> manifest(const std::string& sha256);
  // Bytes [offset, offset + out.size()) of the file.
  Status read(uint64_t offset, std::span<uint8_t> out);

 private:
  SliceClient() = default;
  Result<std::string> request(uint16_t flags, const std::string& payload, uint8_t* into, uint64_t expected);

  int fd_ = -1;
  uint64_t epoch_ = 0;
  uint64_t sequence_ = 0;
  std::string what_;  // "slice link to 10.0.0.1:40123", for errors
  int timeout_ms_ = 30000;
};

// Where a rank takes its model from, as the load spec says.
struct ModelSource {
  std::string path;    // the coordinator's path; tried first
  std::string sha256;  // hex; empty: no manifest (a one-node load or an older coordinator)
  std::string manifest_sha256;
  std::string host;  // the coordinator's slice server
  uint16_t port = 0;
  uint64_t epoch = 0;
  std::string coordinator;  // its name, for messages
};

struct SliceLoadReport {
  std::string from;    // "local copy /x/y.gguf" or "streamed from node a"
  uint64_t bytes = 0;  // read and checked
};

// Opens the model for `shard`: a local copy (the spec's path, else
// <data_dir>/models/<sha256>.gguf) whose header and shard chunks match the manifest,
// else the shard's bytes streamed from the coordinator into memory (a sparse image of
// the file: only the fetched pages take memory). `progress` gets 0..1 as bytes are
// checked. Errors name the tensor and the node.
Result<std::unique_ptr<Model>> open_model_for_shard(const ModelSource& source, const Shard& shard,
                                                    const std::filesystem::path& data_dir, const std::string& key,
                                                    const std::function<void(double)>& progress,
                                                    SliceLoadReport* report = nullptr);

}  // namespace clusterd
