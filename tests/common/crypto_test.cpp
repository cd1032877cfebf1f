// HMAC/SHA-256 against published vectors, hex, UUIDs and the cluster key.
#include "clusterd/common/crypto.h"

#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace clusterd {
namespace {

std::string hex_of(const Digest& d) { return to_hex(d); }

std::vector<uint8_t> bytes_of(std::string_view s) { return {s.begin(), s.end()}; }

// RFC 4231, test case 1.
TEST(HmacSha256, MatchesRfc4231TestCase1) {
  std::string key(20, '\x0b');
  EXPECT_EQ(hex_of(hmac_sha256(key, std::string_view("Hi There"))),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

// RFC 4231, test case 2: a key shorter than the block size.
TEST(HmacSha256, MatchesRfc4231TestCase2) {
  EXPECT_EQ(hex_of(hmac_sha256("Jefe", std::string_view("what do ya want for nothing?"))),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

// RFC 4231, test case 6: a key longer than the block size is hashed first.
TEST(HmacSha256, MatchesRfc4231TestCase6WithAKeyLongerThanTheBlock) {
  std::string key(131, '\xaa');
  EXPECT_EQ(hex_of(hmac_sha256(key, std::string_view("Test Using Larger Than Block-Size Key - Hash Key First"))),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(HmacSha256, ByteAndTextOverloadsAgree) {
  auto data = bytes_of("what do ya want for nothing?");
  EXPECT_EQ(hmac_sha256("Jefe", std::span<const uint8_t>(data)),
            hmac_sha256("Jefe", std::string_view("what do ya want for nothing?")));
}

// FIPS 180-2, "abc".
TEST(Sha256, MatchesThePublishedDigestOfAbc) {
  auto data = bytes_of("abc");
  EXPECT_EQ(hex_of(sha256(data)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ConstantTimeEqual, EqualOnlyForSameLengthAndSameBytes) {
  std::vector<uint8_t> a = {1, 2, 3}, same = {1, 2, 3}, other = {1, 2, 4}, longer = {1, 2, 3, 0};
  EXPECT_TRUE(constant_time_equal(a, same));
  EXPECT_FALSE(constant_time_equal(a, other));
  EXPECT_FALSE(constant_time_equal(a, longer));
}

TEST(RandomBytes, ReturnsTheRequestedCountAndDiffersBetweenCalls) {
  auto a = random_bytes(32), b = random_bytes(32);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_TRUE(random_bytes(0).empty());
}

TEST(Hex, RoundTripsEveryByteValue) {
  std::vector<uint8_t> all(256);
  for (int i = 0; i < 256; ++i) all[i] = static_cast<uint8_t>(i);
  std::string hex = to_hex(all);
  EXPECT_EQ(hex.size(), 512u);
  EXPECT_EQ(hex.substr(0, 8), "00010203");
  EXPECT_EQ(hex.substr(504), "fcfdfeff");
  std::vector<uint8_t> back;
  ASSERT_TRUE(from_hex(hex, back));
  EXPECT_EQ(back, all);
}

TEST(Hex, AcceptsUpperCaseDigits) {
  std::vector<uint8_t> out;
  ASSERT_TRUE(from_hex("ABcdEF", out));
  EXPECT_EQ(out, (std::vector<uint8_t>{0xab, 0xcd, 0xef}));
}

TEST(Hex, RejectsOddLength) {
  std::vector<uint8_t> out;
  EXPECT_FALSE(from_hex("abc", out));
}

TEST(Hex, RejectsANonHexCharacterAnywhere) {
  std::vector<uint8_t> out;
  EXPECT_FALSE(from_hex("0g", out));
  EXPECT_FALSE(from_hex("g0", out));
  EXPECT_FALSE(from_hex("00 1", out));
  EXPECT_FALSE(from_hex("0x12", out));
}

TEST(Hex, EmptyTextIsZeroBytes) {
  std::vector<uint8_t> out = {1};
  EXPECT_TRUE(from_hex("", out));
  EXPECT_TRUE(out.empty());
}

TEST(Uuid, MakeUuidGivesAVersion4Rfc4122Uuid) {
  for (int i = 0; i < 100; ++i) {
    std::string id = make_uuid();
    ASSERT_TRUE(is_uuid(id)) << id;
    EXPECT_EQ(id[14], '4') << id;                                          // version
    EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;  // variant
  }
}

TEST(Uuid, MakeUuidNeverRepeatsInAThousandCalls) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(make_uuid());
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(Uuid, IsUuidAcceptsCanonicalTextInEitherCase) {
  EXPECT_TRUE(is_uuid("123e4567-e89b-42d3-a456-426614174000"));
  EXPECT_TRUE(is_uuid("123E4567-E89B-42D3-A456-426614174000"));
}

TEST(Uuid, IsUuidRejectsWrongLengthDashesOrDigits) {
  EXPECT_FALSE(is_uuid(""));
  EXPECT_FALSE(is_uuid("123e4567-e89b-42d3-a456-42661417400"));    // one short
  EXPECT_FALSE(is_uuid("123e4567-e89b-42d3-a456-4266141740000"));  // one long
  EXPECT_FALSE(is_uuid("123e4567e89b42d3a456426614174000"));       // no dashes
  EXPECT_FALSE(is_uuid("123e4567-e89b-42d3-a456_426614174000"));   // wrong separator
  EXPECT_FALSE(is_uuid("123e456-7e89b-42d3-a456-426614174000"));   // dash moved
  EXPECT_FALSE(is_uuid("123e4567-e89b-42d3-a456-42661417400g"));   // not hex
}

TEST(ClusterKey, GeneratedKeyIs43Base64UrlCharacters) {
  std::string key = generate_cluster_key();
  EXPECT_EQ(key.size(), 43u);
  for (char c : key) {
    EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << key;
  }
}

TEST(ClusterKey, GeneratedKeysAreUniqueAndPassTheirOwnCheck) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string key = generate_cluster_key();
    auto parsed = parse_cluster_key(key, "generated");
    ASSERT_TRUE(parsed.is_ok()) << parsed.status().to_string();
    EXPECT_EQ(*parsed, key);
    seen.insert(key);
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(ClusterKey, ParseTrimsSurroundingWhitespace) {
  auto key = parse_cluster_key(" \t0123456789abcdefXYZ\r\n\n", "file k");
  ASSERT_TRUE(key.is_ok()) << key.status().to_string();
  EXPECT_EQ(*key, "0123456789abcdefXYZ");
}

TEST(ClusterKey, ParseKeepsSpacesInsideTheKey) {
  auto key = parse_cluster_key("correct horse battery staple", "file k");
  ASSERT_TRUE(key.is_ok());
  EXPECT_EQ(*key, "correct horse battery staple");
}

TEST(ClusterKey, ParseRefusesAKeyShorterThan16CharactersAndSaysHowToMakeOne) {
  auto key = parse_cluster_key("  0123456789abcde \n", "file /etc/clusterd/cluster.key");  // 15 after trimming
  ASSERT_FALSE(key.is_ok());
  EXPECT_EQ(key.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = key.status().message();
  EXPECT_NE(m.find("/etc/clusterd/cluster.key"), std::string::npos) << m;
  EXPECT_NE(m.find("16"), std::string::npos) << m;
  EXPECT_NE(m.find("clusterd keygen"), std::string::npos) << m;
}

TEST(ClusterKey, ParseAcceptsExactly16Characters) { EXPECT_TRUE(parse_cluster_key("0123456789abcdef", "k").is_ok()); }

TEST(ClusterKey, ParseRefusesControlCharactersInsideAndSaysItMustBeOneLine) {
  for (std::string bad : {std::string("0123456789\nabcdef"), std::string("0123456789\tabcdef"),
                          std::string("0123456789\x7f"
                                      "abcdef"),
                          std::string("01234567\0"
                                      "89abcdef",
                                      17)}) {
    auto key = parse_cluster_key(bad, "file k");
    ASSERT_FALSE(key.is_ok()) << "accepted a key with a control character";
    EXPECT_NE(key.status().message().find("one line"), std::string::npos) << key.status().message();
  }
}

TEST(ClusterKey, ReadFileGivesTheKeyWithoutTheTrailingNewline) {
  auto path = std::filesystem::temp_directory_path() / ("clusterd-key-" + make_uuid());
  {
    std::ofstream out(path);
    out << "0123456789abcdef-key\n";
  }
  auto key = read_cluster_key_file(path);
  std::filesystem::remove(path);
  ASSERT_TRUE(key.is_ok()) << key.status().to_string();
  EXPECT_EQ(*key, "0123456789abcdef-key");
}

TEST(ClusterKey, ReadFileThatDoesNotExistNamesThePath) {
  auto path = std::filesystem::temp_directory_path() / ("clusterd-missing-" + make_uuid());
  auto key = read_cluster_key_file(path);
  ASSERT_FALSE(key.is_ok());
  EXPECT_NE(key.status().message().find(path.string()), std::string::npos) << key.status().message();
}

TEST(ClusterId, Is16LowerCaseHexCharacters) {
  std::string id = cluster_id_for_key("0123456789abcdef-key");
  EXPECT_EQ(id.size(), 16u);
  std::vector<uint8_t> bytes;
  EXPECT_TRUE(from_hex(id, bytes));
  EXPECT_EQ(id, to_hex(bytes));  // lower case
}

TEST(ClusterId, IsTheSameForTheSameKeyAndDiffersForDifferentKeys) {
  EXPECT_EQ(cluster_id_for_key("0123456789abcdef-key"), cluster_id_for_key("0123456789abcdef-key"));
  EXPECT_NE(cluster_id_for_key("0123456789abcdef-key"), cluster_id_for_key("0123456789abcdef-kez"));
  std::set<std::string> ids;
  for (int i = 0; i < 100; ++i) ids.insert(cluster_id_for_key(generate_cluster_key()));
  EXPECT_EQ(ids.size(), 100u);
}

}  // namespace
}  // namespace clusterd
