// Control-link frames, message parsing, the hello and the handshake proofs, without sockets.
#include "clusterd/transport/control_frame.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "clusterd/common/crypto.h"

namespace clusterd {
namespace {

using nlohmann::json;

const std::string kKey = "test-cluster-key-0123456789";

std::span<const uint8_t, 4> header_of(const std::string& frame) {
  return std::span<const uint8_t, 4>(reinterpret_cast<const uint8_t*>(frame.data()), 4);
}

Hello make_hello(const std::string& node_id) {
  Hello h;
  h.cluster_id = cluster_id_for_key(kKey);
  h.node_id = node_id;
  h.name = "node";
  h.nonce = to_hex(random_bytes(32));
  return h;
}

TEST(ControlFrame, HeaderIsTheBigEndianPayloadLength) {
  json message = {{"type", "ping"}, {"t_us", 42}};
  std::string frame = encode_control_frame(message);
  ASSERT_GT(frame.size(), 4u);
  uint32_t length = (uint32_t(uint8_t(frame[0])) << 24) | (uint32_t(uint8_t(frame[1])) << 16) |
                    (uint32_t(uint8_t(frame[2])) << 8) | uint32_t(uint8_t(frame[3]));
  EXPECT_EQ(length, frame.size() - 4);
}

TEST(ControlFrame, EncodedFrameDecodesToTheSameMessage) {
  json message = {{"type", "inventory"}, {"inventory", {{"gpus", 8}, {"name", "gpu-7 \"quoted\" ünïcode"}}}};
  std::string frame = encode_control_frame(message);
  auto length = decode_control_frame_length(header_of(frame), kMaxControlFrameBytes);
  ASSERT_TRUE(length.is_ok()) << length.status().to_string();
  EXPECT_EQ(*length, frame.size() - 4);
  auto decoded = decode_control_message(std::string_view(frame).substr(4, *length));
  ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
  EXPECT_EQ(*decoded, message);
}

TEST(ControlFrame, LengthAboveTwoHundredFiftyFiveUsesEveryHeaderByte) {
  json message = {{"type", "blob"}, {"data", std::string(70'000, 'x')}};
  std::string frame = encode_control_frame(message);
  auto length = decode_control_frame_length(header_of(frame), kMaxControlFrameBytes);
  ASSERT_TRUE(length.is_ok());
  EXPECT_EQ(*length, frame.size() - 4);
}

TEST(ControlFrame, LengthZeroIsRejected) {
  const uint8_t header[4] = {0, 0, 0, 0};
  auto length = decode_control_frame_length(std::span<const uint8_t, 4>(header), kMaxControlFrameBytes);
  ASSERT_FALSE(length.is_ok());
  EXPECT_NE(length.status().message().find("empty"), std::string::npos) << length.status().message();
}

TEST(ControlFrame, LengthAboveTheLimitIsRejectedNamingTheSizeAndTheLimit) {
  const uint8_t header[4] = {0x00, 0x20, 0x00, 0x00};  // 2 MiB
  auto length = decode_control_frame_length(std::span<const uint8_t, 4>(header), kMaxControlFrameBytes);
  ASSERT_FALSE(length.is_ok());
  EXPECT_NE(length.status().message().find("2097152"), std::string::npos) << length.status().message();
  EXPECT_NE(length.status().message().find("1048576"), std::string::npos) << length.status().message();
}

TEST(ControlFrame, LengthExactlyAtTheLimitIsAccepted) {
  const uint8_t at[4] = {0x00, 0x10, 0x00, 0x00};     // 1 MiB
  const uint8_t above[4] = {0x00, 0x10, 0x00, 0x01};  // 1 MiB + 1
  EXPECT_TRUE(decode_control_frame_length(std::span<const uint8_t, 4>(at), kMaxControlFrameBytes).is_ok());
  EXPECT_FALSE(decode_control_frame_length(std::span<const uint8_t, 4>(above), kMaxControlFrameBytes).is_ok());
}

TEST(ControlFrame, LargestPossibleLengthIsRejected) {
  const uint8_t header[4] = {0xff, 0xff, 0xff, 0xff};
  auto length = decode_control_frame_length(std::span<const uint8_t, 4>(header), kMaxControlFrameBytes);
  ASSERT_FALSE(length.is_ok());
  EXPECT_NE(length.status().message().find("4294967295"), std::string::npos) << length.status().message();
}

TEST(ControlMessage, RejectsTextThatIsNotJson) {
  auto m = decode_control_message("hello there");
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("JSON"), std::string::npos) << m.status().message();
  EXPECT_FALSE(decode_control_message("{\"type\":\"x\"").is_ok());  // cut short
  EXPECT_FALSE(decode_control_message("").is_ok());
}

TEST(ControlMessage, RejectsJsonThatIsNotAnObject) {
  for (const char* text : {"[1,2,3]", "\"hello\"", "42", "null", "true"}) {
    auto m = decode_control_message(text);
    ASSERT_FALSE(m.is_ok()) << text;
    EXPECT_NE(m.status().message().find("object"), std::string::npos) << m.status().message();
  }
}

TEST(ControlMessage, RejectsAnObjectWithoutAStringType) {
  for (const char* text : {"{}", "{\"kind\":\"hello\"}", "{\"type\":5}", "{\"type\":null}", "{\"type\":[\"hello\"]}"}) {
    auto m = decode_control_message(text);
    ASSERT_FALSE(m.is_ok()) << text;
    EXPECT_NE(m.status().message().find("type"), std::string::npos) << m.status().message();
  }
}

TEST(ControlMessage, AcceptsAnObjectWithAStringType) {
  auto m = decode_control_message(R"({"type":"ping","t_us":7})");
  ASSERT_TRUE(m.is_ok());
  EXPECT_EQ((*m)["type"], "ping");
  EXPECT_EQ((*m)["t_us"], 7);
}

TEST(ControlMessage, NeverThrowsOnAThousandRandomPayloads) {
  std::mt19937 rng(2024);
  std::uniform_int_distribution<int> size(0, 200);
  std::uniform_int_distribution<int> byte(0, 255);
  const std::string json_chars = "{}[]\":,type0123456789 truefalsenull\\u";
  std::uniform_int_distribution<size_t> pick(0, json_chars.size() - 1);
  for (int i = 0; i < 1000; ++i) {
    std::string payload(static_cast<size_t>(size(rng)), '\0');
    // Half raw bytes, half JSON-looking text that reaches deeper into the parser.
    for (char& c : payload) c = i % 2 ? json_chars[pick(rng)] : static_cast<char>(byte(rng));
    Result<json> m = invalid_argument("unset");
    ASSERT_NO_THROW(m = decode_control_message(payload)) << "payload " << i;
    if (m.is_ok()) {
      EXPECT_TRUE(m->is_object());
      EXPECT_TRUE(m->contains("type") && (*m)["type"].is_string());
    }
  }
}

TEST(Hello, RoundTripsThroughItsMessage) {
  Hello sent = make_hello(make_uuid());
  auto got = parse_hello(hello_message(sent), sent.cluster_id);
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  EXPECT_EQ(got->version, kControlProtocolVersion);
  EXPECT_EQ(got->cluster_id, sent.cluster_id);
  EXPECT_EQ(got->node_id, sent.node_id);
  EXPECT_EQ(got->name, sent.name);
  EXPECT_EQ(got->nonce, sent.nonce);
}

TEST(Hello, SurvivesTheWire) {
  Hello sent = make_hello(make_uuid());
  std::string frame = encode_control_frame(hello_message(sent));
  auto m = decode_control_message(std::string_view(frame).substr(4));
  ASSERT_TRUE(m.is_ok());
  EXPECT_TRUE(parse_hello(*m, sent.cluster_id).is_ok());
}

TEST(Hello, RejectsAnotherMessageType) {
  json m = hello_message(make_hello(make_uuid()));
  m["type"] = "auth";
  EXPECT_FALSE(parse_hello(m, cluster_id_for_key(kKey)).is_ok());
}

TEST(Hello, RejectsAnotherProtocolVersionSayingWhatToDo) {
  json m = hello_message(make_hello(make_uuid()));
  m["version"] = 2u;  // unsigned, as it comes off the wire
  auto got = parse_hello(m, cluster_id_for_key(kKey));
  ASSERT_FALSE(got.is_ok());
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.status().message().find("version 2"), std::string::npos) << got.status().message();
  EXPECT_NE(got.status().message().find("same clusterd release"), std::string::npos) << got.status().message();
}

TEST(Hello, RejectsAVersionThatIsNotAnUnsignedNumber) {
  for (json version : {json(-1), json("1"), json(1.5), json(nullptr)}) {
    json m = hello_message(make_hello(make_uuid()));
    m["version"] = version;
    EXPECT_FALSE(parse_hello(m, cluster_id_for_key(kKey)).is_ok()) << version.dump();
  }
  json m = hello_message(make_hello(make_uuid()));
  m.erase("version");
  EXPECT_FALSE(parse_hello(m, cluster_id_for_key(kKey)).is_ok());
}

TEST(Hello, RejectsAVersionThatEqualsOneOnlyModulo2To32) {
  json m = hello_message(make_hello(make_uuid()));
  m["version"] = (uint64_t{1} << 32) + kControlProtocolVersion;
  EXPECT_FALSE(parse_hello(m, cluster_id_for_key(kKey)).is_ok());
}

TEST(Hello, FromAnotherClusterIsPermissionDenied) {
  Hello theirs = make_hello(make_uuid());
  theirs.cluster_id = cluster_id_for_key("another-cluster-key-000");
  auto got = parse_hello(hello_message(theirs), cluster_id_for_key(kKey));
  ASSERT_FALSE(got.is_ok());
  EXPECT_EQ(got.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(got.status().message().find("cluster key"), std::string::npos) << got.status().message();
}

TEST(Hello, RejectsANodeIdThatIsNotAUuid) {
  Hello h = make_hello("node-7");
  auto got = parse_hello(hello_message(h), h.cluster_id);
  ASSERT_FALSE(got.is_ok());
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.status().message().find("UUID"), std::string::npos) << got.status().message();
}

TEST(Hello, RejectsANonceShorterThan64HexDigits) {
  Hello h = make_hello(make_uuid());
  h.nonce = h.nonce.substr(0, 62);
  auto got = parse_hello(hello_message(h), h.cluster_id);
  ASSERT_FALSE(got.is_ok());
  EXPECT_NE(got.status().message().find("nonce"), std::string::npos) << got.status().message();
}

TEST(Hello, RejectsANonceOf64CharactersThatAreNotHex) {
  Hello h = make_hello(make_uuid());
  h.nonce = std::string(64, 'z');
  EXPECT_FALSE(parse_hello(hello_message(h), h.cluster_id).is_ok());
}

TEST(Hello, RejectsMissingOrNonStringFields) {
  for (const char* field : {"cluster_id", "node_id", "nonce"}) {
    Hello h = make_hello(make_uuid());
    json missing = hello_message(h);
    missing.erase(field);
    EXPECT_FALSE(parse_hello(missing, h.cluster_id).is_ok()) << "without " << field;
    json number = hello_message(h);
    number[field] = 7;
    EXPECT_FALSE(parse_hello(number, h.cluster_id).is_ok()) << field << " as a number";
  }
}

TEST(Hello, CutsALongNameTo63Characters) {
  Hello h = make_hello(make_uuid());
  h.name = std::string(500, 'n');
  auto got = parse_hello(hello_message(h), h.cluster_id);
  ASSERT_TRUE(got.is_ok());
  EXPECT_EQ(got->name, std::string(63, 'n'));
}

class AuthProof : public ::testing::Test {
 protected:
  Hello alice_ = make_hello(make_uuid());
  Hello bob_ = make_hello(make_uuid());
};

TEST_F(AuthProof, ProofMadeWithTheSameKeyVerifies) {
  std::string proof = auth_proof(kKey, bob_, alice_);  // bob proves to alice
  EXPECT_EQ(proof.size(), 64u);
  EXPECT_TRUE(verify_auth_proof(kKey, alice_, bob_, proof));
}

TEST_F(AuthProof, BothDirectionsVerify) {
  EXPECT_TRUE(verify_auth_proof(kKey, alice_, bob_, auth_proof(kKey, bob_, alice_)));
  EXPECT_TRUE(verify_auth_proof(kKey, bob_, alice_, auth_proof(kKey, alice_, bob_)));
}

TEST_F(AuthProof, ProofMadeWithAnotherKeyFails) {
  std::string proof = auth_proof("another-cluster-key-000", bob_, alice_);
  EXPECT_FALSE(verify_auth_proof(kKey, alice_, bob_, proof));
}

TEST_F(AuthProof, OwnProofReflectedBackAsThePeersFails) {
  std::string mine = auth_proof(kKey, alice_, bob_);
  EXPECT_FALSE(verify_auth_proof(kKey, alice_, bob_, mine));
}

TEST_F(AuthProof, ReflectionFailsEvenWhenThePeerEchoesOurNonce) {
  bob_.nonce = alice_.nonce;
  std::string mine = auth_proof(kKey, alice_, bob_);
  EXPECT_FALSE(verify_auth_proof(kKey, alice_, bob_, mine));
}

TEST_F(AuthProof, ProofFromAnotherConnectionFails) {
  std::string old = auth_proof(kKey, bob_, alice_);
  Hello fresh_alice = alice_;
  fresh_alice.nonce = to_hex(random_bytes(32));
  EXPECT_FALSE(verify_auth_proof(kKey, fresh_alice, bob_, old));
}

TEST_F(AuthProof, ProofForAnotherNodeIdFails) {
  std::string proof = auth_proof(kKey, bob_, alice_);
  Hello mallory = bob_;
  mallory.node_id = make_uuid();
  EXPECT_FALSE(verify_auth_proof(kKey, alice_, mallory, proof));
}

TEST_F(AuthProof, EmptyOrTruncatedProofFails) {
  std::string proof = auth_proof(kKey, bob_, alice_);
  EXPECT_FALSE(verify_auth_proof(kKey, alice_, bob_, ""));
  EXPECT_FALSE(verify_auth_proof(kKey, alice_, bob_, proof.substr(0, 63)));
  EXPECT_FALSE(verify_auth_proof(kKey, alice_, bob_, proof + "0"));
}

}  // namespace
}  // namespace clusterd
