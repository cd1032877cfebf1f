// Slice streaming over loopback: a rank without a copy of the model gets exactly its
// shard's chunks from the coordinator and builds the same weights; a copy in the data
// dir or at the path is used when it matches; bytes that differ from the manifest, a
// wrong cluster key and a wrong manifest are refused with errors that say which.
#include "clusterd/node/slices.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "clusterd/common/crypto.h"
#include "clusterd/engine/packed.h"
#include "clusterd/engine/synth.h"
#include "clusterd/engine/transformer.h"
#include "clusterd/engine/weights.h"

namespace clusterd {
namespace {

namespace fs = std::filesystem;

const std::string kKey = "slices-test-key-0123456789abcdef";

class SlicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("clusterd-slices-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "coordinator");
    fs::create_directories(dir_ / "data" / "models");
    model_ = dir_ / "coordinator" / "model.gguf";
    make_model(TensorType::kF32, false);
    if (HasFatalFailure()) return;
    shard_.kv_head_begin = params_.n_head_kv / 2;  // rank 1 of 2
    shard_.ffn_begin = params_.n_ff / 2;
    shard_.vocab_begin = params_.n_vocab / 2;
  }
  // Writes model_ (the whole model's shard in shard_) and its manifest.
  void make_model(TensorType type, bool tied) {
    SynthOptions o;
    o.n_embd = 512;  // 2-D tensors over 1 MiB in F32, so a shard takes some chunks, not all
    o.n_ff = 1024;
    o.n_head = 8;
    o.n_head_kv = 4;
    o.n_vocab = 1024;
    o.type = type;
    o.tied_embeddings = tied;
    std::string notes;
    ASSERT_TRUE(synthesize_model(o, model_, &notes).is_ok());
    auto m = build_manifest(model_);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    doc_ = std::make_shared<ManifestDocument>(ManifestDocument::of(std::move(*m)));
    auto whole = Model::open(model_);
    ASSERT_TRUE(whole.is_ok());
    params_ = (*whole)->params;
    shard_ = Shard::whole(params_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<SliceServer> serve(const fs::path& path) {
    auto s = SliceServer::start(path, doc_, kKey, 42);
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    return s.is_ok() ? std::move(*s) : nullptr;
  }
  ModelSource source(const fs::path& path, uint16_t port) const {
    return {path.string(), to_hex(doc_->manifest.file_sha256), doc_->sha256, "127.0.0.1", port, 42, "a"};
  }
  std::vector<float> logits(const Model& model) const {
    auto weights = load_weights(*model.file, model.params, shard_);
    EXPECT_TRUE(weights.is_ok()) << weights.status().to_string();
    if (!weights.is_ok()) return {};
    LocalCollective local;
    Transformer tf(*weights, local, TransformerOptions{16, 1, TensorType::kF32, 1});
    std::vector<BatchToken> batch = {{1, 0, 0, true}, {7, 1, 0, true}, {300, 2, 0, true}};
    std::vector<float> out;
    EXPECT_TRUE(tf.forward(batch, out).is_ok());
    return out;
  }
  std::vector<float> local_logits() const { return logits(**Model::open(model_)); }
  // A copy of the model with one byte changed inside `tensor`'s first row.
  fs::path changed_copy(const std::string& tensor, const fs::path& at) const {
    fs::copy_file(model_, at, fs::copy_options::overwrite_existing);
    const ManifestTensor* t = doc_->manifest.find(tensor);
    std::fstream f(at, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(t->offset + 100));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x20);
    f.seekp(static_cast<std::streamoff>(t->offset + 100));
    f.write(&c, 1);
    return at;
  }

  fs::path dir_, model_;
  std::shared_ptr<ManifestDocument> doc_;
  ModelParams params_;
  Shard shard_;
};

TEST_F(SlicesTest, ARankWithoutACopyStreamsOnlyItsChunksAndComputesTheSame) {
  auto server = serve(model_);
  ASSERT_TRUE(server);
  std::vector<double> seen;
  SliceLoadReport report;
  auto model = open_model_for_shard(
      source(dir_ / "elsewhere" / "model.gguf", server->port()), shard_, dir_ / "data", kKey,
      [&](double f) { seen.push_back(f); }, &report);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  EXPECT_EQ(report.from, "streamed from node a");
  EXPECT_EQ(logits(**model), local_logits());
  const uint64_t data_bytes = doc_->manifest.file_bytes - doc_->manifest.header_bytes;
  EXPECT_LT(report.bytes, data_bytes * 9 / 10) << "rank 1 of 2 fetched " << report.bytes << " of " << data_bytes;
  EXPECT_EQ(server->bytes_served(), report.bytes + doc_->manifest.header_bytes);
  ASSERT_FALSE(seen.empty());
  EXPECT_DOUBLE_EQ(seen.back(), 1.0);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
}

// Whole pages of `bytes` resident in memory.
size_t resident_pages(std::span<const uint8_t> bytes) {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(bytes.data()) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(bytes.data()) + bytes.size()) / page * page;
  if (begin >= end) return 0;
  std::vector<unsigned char> in((end - begin) / page);
  EXPECT_EQ(::mincore(reinterpret_cast<void*>(begin), end - begin, in.data()), 0);
  size_t n = 0;
  for (unsigned char c : in) n += c & 1;
  return n;
}

// A streamed rank whose matrices are packed frees the image's copy of them, and keeps
// what is still read: the embedding (shared with the tied output matrix) stays intact.
TEST_F(SlicesTest, PackedMatricesOfAStreamedImageAreFreedAndTheEmbeddingIsKept) {
  make_model(TensorType::kQ8_0, /*tied=*/true);
  if (HasFatalFailure()) return;
  auto server = serve(model_);
  ASSERT_TRUE(server);
  auto model = open_model_for_shard(source(dir_ / "elsewhere" / "model.gguf", server->port()), shard_, dir_ / "data",
                                    kKey, nullptr, nullptr);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  const GgufFile& file = *(*model)->file;
  const auto up = file.tensor_data(*file.find_tensor("blk.0.ffn_up.weight"));
  const auto embd = file.tensor_data(*file.find_tensor("token_embd.weight"));
  ASSERT_GT(resident_pages(up), 0u);
  const std::vector<float> streamed = logits(**model);  // packs (where the CPU can) and frees
  EXPECT_EQ(streamed, local_logits()) << "the embedding rows must still be there";
  if (packing_supported(TensorType::kQ8_0)) {
    EXPECT_EQ(resident_pages(up), 0u) << "the packed matrix's streamed bytes stay in memory";
    EXPECT_GT(resident_pages(embd), 0u);
  }
}

TEST_F(SlicesTest, AMatchingCopyInTheDataDirIsUsedAndNothingIsStreamed) {
  auto server = serve(model_);
  ASSERT_TRUE(server);
  fs::copy_file(model_, dir_ / "data" / "models" / (to_hex(doc_->manifest.file_sha256) + ".gguf"));
  SliceLoadReport report;
  auto model =
      open_model_for_shard(source(dir_ / "elsewhere.gguf", server->port()), shard_, dir_ / "data", kKey, {}, &report);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  EXPECT_NE(report.from.find("local copy " + (dir_ / "data" / "models").string()), std::string::npos) << report.from;
  EXPECT_EQ(server->bytes_served(), 0u);
  EXPECT_EQ(logits(**model), local_logits());
}

TEST_F(SlicesTest, ACopyThatDiffersInTheShardsBytesIsPassedOverForStreaming) {
  auto server = serve(model_);
  ASSERT_TRUE(server);
  const fs::path mine = changed_copy("blk.0.ffn_down.weight", dir_ / "mine.gguf");  // every rank reads all of it
  SliceLoadReport report;
  auto model = open_model_for_shard(source(mine, server->port()), shard_, dir_ / "data", kKey, {}, &report);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  EXPECT_EQ(report.from, "streamed from node a");
  EXPECT_EQ(logits(**model), local_logits());
}

TEST_F(SlicesTest, StreamedBytesThatDifferFromTheManifestAreRefusedNamingTheTensor) {
  // The coordinator's file changed after its manifest was made.
  auto server = serve(changed_copy("token_embd.weight", dir_ / "coordinator" / "changed.gguf"));
  ASSERT_TRUE(server);
  auto model = open_model_for_shard(source(dir_ / "missing.gguf", server->port()), shard_, dir_ / "data", kKey, {});
  ASSERT_FALSE(model.is_ok());
  const std::string& message = model.status().message();
  EXPECT_NE(message.find("from node a: tensor token_embd.weight: bytes [0, 1048576) do not match the manifest's "
                         "SHA-256"),
            std::string::npos)
      << message;
}

TEST_F(SlicesTest, AWrongClusterKeyOrManifestIsRefused) {
  auto server = serve(model_);
  ASSERT_TRUE(server);
  auto stranger = open_model_for_shard(source(dir_ / "missing.gguf", server->port()), shard_, dir_ / "data",
                                       "another-key-0123456789", {});
  ASSERT_FALSE(stranger.is_ok());
  EXPECT_NE(stranger.status().message().find("does not hold this cluster's key"), std::string::npos)
      << stranger.status().message();
  ModelSource forged = source(dir_ / "missing.gguf", server->port());
  forged.manifest_sha256 = std::string(64, '0');
  auto wrong = open_model_for_shard(forged, shard_, dir_ / "data", kKey, {});
  ASSERT_FALSE(wrong.is_ok());
  EXPECT_NE(wrong.status().message().find("is not the one in the load spec"), std::string::npos)
      << wrong.status().message();
}

TEST_F(SlicesTest, OutOfRangeRequestsGetAnErrorAndTheLinkStaysUsable) {
  auto server = serve(model_);
  ASSERT_TRUE(server);
  auto client = SliceClient::connect("127.0.0.1", server->port(), kKey, 42);
  ASSERT_TRUE(client.is_ok()) << client.status().to_string();
  std::vector<uint8_t> buf(16);
  Status s = (*client)->read(doc_->manifest.file_bytes - 8, buf);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("bad slice request"), std::string::npos) << s.message();
  ASSERT_TRUE((*client)->read(0, buf).is_ok());
  EXPECT_EQ(0, std::memcmp(buf.data(), "GGUF", 4));
  auto other_epoch = SliceClient::connect("127.0.0.1", server->port(), kKey, 41, 2000);
  EXPECT_FALSE(other_epoch.is_ok());
}

}  // namespace
}  // namespace clusterd
