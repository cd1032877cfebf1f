// The node identity in a data dir: made once, stable, and an incarnation that only grows.
#include "clusterd/common/node_identity.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "clusterd/common/clock.h"
#include "clusterd/common/crypto.h"

namespace clusterd {
namespace {

namespace fs = std::filesystem;

class NodeIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("clusterd-identity-" + make_uuid());
    data_dir_ = root_ / "data";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  static std::string read(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static void write(const fs::path& p, const std::string& text) {
    std::ofstream out(p);
    out << text;
  }
  static unsigned mode_of(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 0777;
  }

  fs::path root_;
  fs::path data_dir_;
};

TEST_F(NodeIdentityTest, FirstStartCreatesTheDataDirAndAUuid) {
  auto id = load_or_create_identity(data_dir_);
  ASSERT_TRUE(id.is_ok()) << id.status().to_string();
  EXPECT_TRUE(id->created);
  EXPECT_TRUE(is_uuid(id->id)) << id->id;
  EXPECT_GT(id->incarnation, 0u);
  EXPECT_EQ(read(data_dir_ / "node_id"), id->id + "\n");
}

TEST_F(NodeIdentityTest, DataDirAndFilesArePrivateToTheOwner) {
  ASSERT_TRUE(load_or_create_identity(data_dir_).is_ok());
  EXPECT_EQ(mode_of(data_dir_), 0700u);
  EXPECT_EQ(mode_of(data_dir_ / "node_id"), 0600u);
  EXPECT_EQ(mode_of(data_dir_ / "incarnation"), 0600u);
}

TEST_F(NodeIdentityTest, IdIsStableAcrossStarts) {
  auto first = load_or_create_identity(data_dir_);
  auto second = load_or_create_identity(data_dir_);
  auto third = load_or_create_identity(data_dir_);
  ASSERT_TRUE(first.is_ok() && second.is_ok() && third.is_ok());
  EXPECT_EQ(second->id, first->id);
  EXPECT_EQ(third->id, first->id);
  EXPECT_FALSE(second->created);
  EXPECT_FALSE(third->created);
}

TEST_F(NodeIdentityTest, IncarnationStrictlyIncreasesOnEveryStartEvenWithinOneMillisecond) {
  uint64_t last = 0;
  for (int i = 0; i < 20; ++i) {
    auto id = load_or_create_identity(data_dir_);
    ASSERT_TRUE(id.is_ok()) << id.status().to_string();
    EXPECT_GT(id->incarnation, last) << "start " << i;
    last = id->incarnation;
  }
}

TEST_F(NodeIdentityTest, IncarnationGrowsPastAStoredValueAheadOfTheClock) {
  // A data dir written while the wall clock was far ahead (then stepped back).
  uint64_t ahead = static_cast<uint64_t>(wall_clock_ms()) + 10'000'000'000ull;
  ASSERT_TRUE(load_or_create_identity(data_dir_).is_ok());
  write(data_dir_ / "incarnation", std::to_string(ahead) + "\n");
  auto id = load_or_create_identity(data_dir_);
  ASSERT_TRUE(id.is_ok());
  EXPECT_EQ(id->incarnation, ahead + 1);
}

TEST_F(NodeIdentityTest, ANodeIdFileWithTrailingWhitespaceIsAccepted) {
  fs::create_directories(data_dir_);
  write(data_dir_ / "node_id", "123e4567-e89b-42d3-a456-426614174000 \r\n");
  auto id = load_or_create_identity(data_dir_);
  ASSERT_TRUE(id.is_ok()) << id.status().to_string();
  EXPECT_EQ(id->id, "123e4567-e89b-42d3-a456-426614174000");
  EXPECT_FALSE(id->created);
}

TEST_F(NodeIdentityTest, CorruptNodeIdFileIsAnErrorNamingTheFileAndTheFix) {
  fs::create_directories(data_dir_);
  write(data_dir_ / "node_id", "not-a-uuid\n");
  auto id = load_or_create_identity(data_dir_);
  ASSERT_FALSE(id.is_ok());
  const std::string& m = id.status().message();
  EXPECT_NE(m.find((data_dir_ / "node_id").string()), std::string::npos) << m;
  EXPECT_NE(m.find("delete"), std::string::npos) << m;
  EXPECT_EQ(read(data_dir_ / "node_id"), "not-a-uuid\n");  // left for the user to inspect
}

TEST_F(NodeIdentityTest, EmptyNodeIdFileIsAnErrorNamingTheFile) {
  fs::create_directories(data_dir_);
  write(data_dir_ / "node_id", "");
  auto id = load_or_create_identity(data_dir_);
  ASSERT_FALSE(id.is_ok());
  EXPECT_NE(id.status().message().find("node_id"), std::string::npos) << id.status().message();
}

TEST_F(NodeIdentityTest, DataDirThatIsAFileIsAnErrorNamingIt) {
  fs::create_directories(root_);
  write(data_dir_, "a file, not a dir");
  auto id = load_or_create_identity(data_dir_);
  ASSERT_FALSE(id.is_ok());
  EXPECT_NE(id.status().message().find(data_dir_.string()), std::string::npos) << id.status().message();
}

TEST_F(NodeIdentityTest, WriteFileAtomicallyReplacesTheContentAndLeavesNoTemporary) {
  fs::create_directories(root_);
  fs::path p = root_ / "f";
  ASSERT_TRUE(write_file_atomically(p, "one", 0600).is_ok());
  ASSERT_TRUE(write_file_atomically(p, "two", 0640).is_ok());
  EXPECT_EQ(read(p), "two");
  EXPECT_FALSE(fs::exists(root_ / "f.tmp"));
}

TEST_F(NodeIdentityTest, WriteFileAtomicallyIntoAMissingDirIsAnErrorNamingThePath) {
  fs::path p = root_ / "missing" / "f";
  Status s = write_file_atomically(p, "x", 0600);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find(p.string()), std::string::npos) << s.message();
}

}  // namespace
}  // namespace clusterd
