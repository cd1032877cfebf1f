// The model manifest: hashes that match the file, 1 MiB chunks per tensor, a JSON
// round trip, and a changed byte refused with the tensor and the byte range named.
#include "clusterd/model/manifest.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "clusterd/model/gguf.h"

namespace clusterd {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 31 + seed + (i >> 12));
  return v;
}

class ManifestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = fs::temp_directory_path() / ("clusterd-manifest-test-" + std::to_string(::getpid()) + ".gguf");
    GgufWriter w;
    w.set("general.architecture", GgufValue::str("llama"));
    // 1024 x 768 f32 = 3 MiB: three chunks; the norm fits in one.
    ASSERT_TRUE(w.add_tensor("blk.0.big.weight", TensorType::kF32, {1024, 768}, pattern(3u << 20, 1)).is_ok());
    ASSERT_TRUE(w.add_tensor("blk.0.norm.weight", TensorType::kF32, {64}, pattern(256, 2)).is_ok());
    ASSERT_TRUE(w.write(path_).is_ok());
    std::ifstream in(path_, std::ios::binary);
    bytes_.assign(std::istreambuf_iterator<char>(in), {});
  }
  void TearDown() override { fs::remove(path_); }

  fs::path path_;
  std::vector<uint8_t> bytes_;
};

TEST_F(ManifestTest, HashesTheWholeFileTheHeaderAndEachChunkOfEachTensor) {
  auto m = build_manifest(path_);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  auto file = GgufFile::parse(bytes_, "x.gguf");
  ASSERT_TRUE(file.is_ok());
  EXPECT_EQ(m->file_bytes, bytes_.size());
  EXPECT_EQ(m->file_sha256, sha256(bytes_));
  EXPECT_EQ(m->header_bytes, (*file)->data_offset());
  EXPECT_EQ(m->header_sha256, sha256(std::span(bytes_).first(m->header_bytes)));
  ASSERT_EQ(m->tensors.size(), 2u);
  const ManifestTensor* big = m->find("blk.0.big.weight");
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(big->offset, (*file)->data_offset() + (*file)->find_tensor("blk.0.big.weight")->offset);
  ASSERT_EQ(big->chunks.size(), 3u);
  EXPECT_EQ(big->chunks[1], sha256(std::span(bytes_).subspan(big->offset + (1u << 20), 1u << 20)));
  EXPECT_EQ(m->find("blk.0.norm.weight")->chunks.size(), 1u);
}

TEST_F(ManifestTest, ReadsBackFromJsonAndRefusesWrongChunkCounts) {
  auto m = build_manifest(path_);
  ASSERT_TRUE(m.is_ok());
  auto back = ModelManifest::from_json(m->to_json());
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->to_json(), m->to_json());
  nlohmann::json doc = m->to_json();
  doc["tensors"][0]["chunks"].erase(0);
  auto bad = ModelManifest::from_json(doc);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("blk.0.big.weight has 2 chunk hashes"), std::string::npos)
      << bad.status().message();
  EXPECT_FALSE(ModelManifest::from_json(nlohmann::json{{"version", 2}}).is_ok());
}

TEST_F(ManifestTest, ChunkCoverRoundsOutToWholeChunks) {
  auto m = build_manifest(path_);
  ASSERT_TRUE(m.is_ok());
  const ManifestTensor& big = *m->find("blk.0.big.weight");
  EXPECT_EQ(manifest_chunk_cover(*m, big, 10 << 10, 3 << 19), std::make_pair(uint64_t{0}, uint64_t{2} << 20));
  EXPECT_EQ(manifest_chunk_cover(*m, big, 5 << 19, 3 << 20), std::make_pair(uint64_t{2} << 20, uint64_t{3} << 20));
  EXPECT_EQ(manifest_chunk_cover(*m, big, 0, 0), std::make_pair(uint64_t{0}, uint64_t{0}));
}

TEST_F(ManifestTest, AChangedByteIsRefusedNamingTheTensorAndTheRange) {
  auto m = build_manifest(path_);
  ASSERT_TRUE(m.is_ok());
  const ManifestTensor& big = *m->find("blk.0.big.weight");
  std::span<uint8_t> data(bytes_.data() + big.offset, big.bytes);
  EXPECT_TRUE(verify_tensor_chunks(*m, big, data, 0, big.bytes, "local copy x.gguf").is_ok());
  data[(1u << 20) + 12345] ^= 0x40;
  // The rows a shard needs from the first chunk still check out.
  EXPECT_TRUE(verify_tensor_chunks(*m, big, data, 0, 1u << 20, "local copy x.gguf").is_ok());
  Status s = verify_tensor_chunks(*m, big, data, 1u << 19, 3u << 19, "model x.gguf from node a");
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("model x.gguf from node a: tensor blk.0.big.weight: bytes [1048576, 2097152) do not "
                             "match the manifest's SHA-256"),
            std::string::npos)
      << s.message();
}

TEST_F(ManifestTest, AMissingFileIsAnErrorNamingIt) {
  auto m = build_manifest(path_.string() + ".missing");
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find(".missing"), std::string::npos);
}

}  // namespace
}  // namespace clusterd
