// Beacon wire format: round trips, and every way a datagram can be wrong is refused
// with the right reason, never accepted and never a crash.
#include "clusterd/discovery/beacon.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "clusterd/common/crypto.h"

namespace clusterd {
namespace {

const std::string kKey = "test-cluster-key-0123456789";
const std::string kOtherKey = "other-cluster-key-9876543210";

Beacon sample_beacon(BeaconKind kind = BeaconKind::kAnnounce) {
  Beacon b;
  b.kind = kind;
  b.cluster_id = cluster_id_for_key(kKey);
  b.node_id = "123e4567-e89b-42d3-a456-426614174000";
  b.incarnation = 0x0102030405060708ull;
  b.sequence = 0x1112131415161718ull;
  b.control_port = 8001;
  b.api_port = 8000;
  b.name = "gpu-node-7";
  b.api_host = "10.0.0.7";
  b.resources.cores = 96;
  b.resources.memory_total_bytes = 1ull << 40;
  b.resources.memory_available_bytes = (1ull << 39) + 12345;
  b.resources.accelerators = 8;
  b.resources.rdma_devices = 4;
  return b;
}

struct Decoded {
  bool ok = false;
  BeaconReject reject = BeaconReject::kNone;
  Beacon beacon;
};

Decoded decode(std::span<const uint8_t> datagram, const std::string& key = kKey) {
  Decoded d;
  d.ok = decode_beacon(datagram, key, cluster_id_for_key(key), d.beacon, d.reject);
  return d;
}

// Signs `body` (everything before the MAC) the way encode_beacon does.
std::vector<uint8_t> sign(std::vector<uint8_t> body, const std::string& key = kKey) {
  Digest mac = hmac_sha256(key, std::span<const uint8_t>(body));
  body.insert(body.end(), mac.begin(), mac.end());
  return body;
}

std::vector<uint8_t> body_of(const std::vector<uint8_t>& datagram) { return {datagram.begin(), datagram.end() - 32}; }

void expect_same(const Beacon& a, const Beacon& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.cluster_id, b.cluster_id);
  EXPECT_EQ(a.node_id, b.node_id);
  EXPECT_EQ(a.incarnation, b.incarnation);
  EXPECT_EQ(a.sequence, b.sequence);
  EXPECT_EQ(a.control_port, b.control_port);
  EXPECT_EQ(a.api_port, b.api_port);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.api_host, b.api_host);
  EXPECT_EQ(a.resources.cores, b.resources.cores);
  EXPECT_EQ(a.resources.memory_total_bytes, b.resources.memory_total_bytes);
  EXPECT_EQ(a.resources.memory_available_bytes, b.resources.memory_available_bytes);
  EXPECT_EQ(a.resources.accelerators, b.resources.accelerators);
  EXPECT_EQ(a.resources.rdma_devices, b.resources.rdma_devices);
}

class BeaconRoundTrip : public ::testing::TestWithParam<BeaconKind> {};

TEST_P(BeaconRoundTrip, EveryFieldSurvivesEncodeAndDecode) {
  Beacon sent = sample_beacon(GetParam());
  auto datagram = encode_beacon(sent, kKey);
  Decoded got = decode(datagram);
  ASSERT_TRUE(got.ok) << beacon_reject_name(got.reject);
  EXPECT_EQ(got.reject, BeaconReject::kNone);
  expect_same(got.beacon, sent);
}

INSTANTIATE_TEST_SUITE_P(AllKinds, BeaconRoundTrip,
                         ::testing::Values(BeaconKind::kAnnounce, BeaconKind::kGoodbye, BeaconKind::kProbe));

TEST(Beacon, ExtremeFieldValuesRoundTrip) {
  Beacon sent = sample_beacon();
  sent.incarnation = UINT64_MAX;
  sent.sequence = 0;
  sent.control_port = 65535;
  sent.api_port = 1;
  sent.name = "";
  sent.api_host = "";
  sent.resources = {UINT16_MAX, UINT64_MAX, 0, UINT8_MAX, 0};
  Decoded got = decode(encode_beacon(sent, kKey));
  ASSERT_TRUE(got.ok) << beacon_reject_name(got.reject);
  expect_same(got.beacon, sent);
}

TEST(Beacon, StartsWithMagicAndVersion) {
  auto datagram = encode_beacon(sample_beacon(), kKey);
  ASSERT_GE(datagram.size(), 5u);
  EXPECT_EQ(std::string(datagram.begin(), datagram.begin() + 4), "CLSD");
  EXPECT_EQ(datagram[4], kBeaconVersion);
}

TEST(Beacon, FitsTheSizeLimitEvenWithMaximumLengthNames) {
  Beacon b = sample_beacon();
  b.name = std::string(kMaxBeaconNameBytes, 'n');
  b.api_host = std::string(kMaxBeaconNameBytes, 'h');
  auto datagram = encode_beacon(b, kKey);
  EXPECT_LT(datagram.size(), kMaxBeaconBytes);
  Decoded got = decode(datagram);
  ASSERT_TRUE(got.ok) << beacon_reject_name(got.reject);
  EXPECT_EQ(got.beacon.name, b.name);
  EXPECT_EQ(got.beacon.api_host, b.api_host);
}

TEST(Beacon, NamesLongerThanTheLimitAreTruncatedNotRejected) {
  Beacon b = sample_beacon();
  b.name = std::string(200, 'n');
  b.api_host = std::string(100, 'h');
  auto datagram = encode_beacon(b, kKey);
  EXPECT_LT(datagram.size(), kMaxBeaconBytes);
  Decoded got = decode(datagram);
  ASSERT_TRUE(got.ok) << beacon_reject_name(got.reject);
  EXPECT_EQ(got.beacon.name, std::string(kMaxBeaconNameBytes, 'n'));
  EXPECT_EQ(got.beacon.api_host, std::string(kMaxBeaconNameBytes, 'h'));
}

TEST(Beacon, OneFlippedBitInTheBodyIsABadMac) {
  auto datagram = encode_beacon(sample_beacon(), kKey);
  // Past the header and cluster id, which have their own reasons.
  for (size_t i = 16; i < datagram.size(); ++i) {
    auto bad = datagram;
    bad[i] ^= 0x01;
    Decoded got = decode(bad);
    EXPECT_FALSE(got.ok) << "byte " << i;
    EXPECT_EQ(got.reject, BeaconReject::kBadMac) << "byte " << i;
  }
}

TEST(Beacon, SignedWithAnotherKeyButOurClusterIdIsABadMac) {
  Beacon forged = sample_beacon();  // carries cluster_id_for_key(kKey)
  Decoded got = decode(encode_beacon(forged, kOtherKey));
  EXPECT_FALSE(got.ok);
  EXPECT_EQ(got.reject, BeaconReject::kBadMac);
}

TEST(Beacon, FromAnotherClusterIsOtherCluster) {
  Beacon theirs = sample_beacon();
  theirs.cluster_id = cluster_id_for_key(kOtherKey);
  Decoded got = decode(encode_beacon(theirs, kOtherKey));
  EXPECT_FALSE(got.ok);
  EXPECT_EQ(got.reject, BeaconReject::kOtherCluster);
}

TEST(Beacon, WrongMagicIsBadMagic) {
  auto datagram = encode_beacon(sample_beacon(), kKey);
  datagram[0] = 'X';
  Decoded got = decode(datagram);
  EXPECT_FALSE(got.ok);
  EXPECT_EQ(got.reject, BeaconReject::kBadMagic);
}

TEST(Beacon, Version2IsUnsupportedEvenWhenCorrectlySigned) {
  auto body = body_of(encode_beacon(sample_beacon(), kKey));
  body[4] = 2;
  Decoded got = decode(sign(body));
  EXPECT_FALSE(got.ok);
  EXPECT_EQ(got.reject, BeaconReject::kUnsupportedVersion);
}

TEST(Beacon, UnknownKindIsMalformedEvenWhenCorrectlySigned) {
  for (uint8_t kind : {uint8_t{0}, uint8_t{4}, uint8_t{255}}) {
    auto body = body_of(encode_beacon(sample_beacon(), kKey));
    body[5] = kind;
    Decoded got = decode(sign(body));
    EXPECT_FALSE(got.ok) << int(kind);
    EXPECT_EQ(got.reject, BeaconReject::kMalformed) << int(kind);
  }
}

TEST(Beacon, EveryTruncationIsRejected) {
  auto datagram = encode_beacon(sample_beacon(), kKey);
  for (size_t len = 0; len < datagram.size(); ++len) {
    Decoded got = decode(std::span<const uint8_t>(datagram.data(), len));
    EXPECT_FALSE(got.ok) << "accepted " << len << " of " << datagram.size() << " bytes";
    EXPECT_NE(got.reject, BeaconReject::kNone) << "length " << len;
  }
}

TEST(Beacon, TrailingBytesAfterTheMacAreRejected) {
  auto datagram = encode_beacon(sample_beacon(), kKey);
  datagram.push_back(0);
  Decoded got = decode(datagram);
  EXPECT_FALSE(got.ok);
  EXPECT_NE(got.reject, BeaconReject::kNone);
}

TEST(Beacon, TrailingBytesInsideTheSignedBodyAreMalformed) {
  auto body = body_of(encode_beacon(sample_beacon(), kKey));
  body.push_back(0xee);
  Decoded got = decode(sign(body));
  EXPECT_FALSE(got.ok);
  EXPECT_EQ(got.reject, BeaconReject::kMalformed);
}

TEST(Beacon, SignedBodyTruncatedInsideAFieldIsMalformed) {
  auto body = body_of(encode_beacon(sample_beacon(), kKey));
  // Every cut after the cluster id, re-signed so only the parser can catch it.
  for (size_t len = 16; len < body.size(); ++len) {
    Decoded got = decode(sign({body.begin(), body.begin() + static_cast<long>(len)}));
    EXPECT_FALSE(got.ok) << "accepted a body cut at " << len;
    EXPECT_EQ(got.reject, BeaconReject::kMalformed) << "length " << len;
  }
}

TEST(Beacon, NameLengthAboveTheLimitIsMalformedEvenWhenCorrectlySigned) {
  Beacon b = sample_beacon();
  b.name = "";
  auto body = body_of(encode_beacon(b, kKey));
  // The name's length byte follows magic(4) version(1) kind(1) flags(2) cluster(8)
  // node(16) incarnation(8) sequence(8) ports(4).
  constexpr size_t kNameLengthAt = 52;
  ASSERT_EQ(body[kNameLengthAt], 0);
  body[kNameLengthAt] = kMaxBeaconNameBytes + 1;
  body.insert(body.begin() + kNameLengthAt + 1, kMaxBeaconNameBytes + 1, 'x');
  Decoded got = decode(sign(body));
  EXPECT_FALSE(got.ok);
  EXPECT_EQ(got.reject, BeaconReject::kMalformed);
}

TEST(Beacon, DatagramAboveTheSizeLimitIsRejected) {
  auto body = body_of(encode_beacon(sample_beacon(), kKey));
  body.resize(kMaxBeaconBytes, 0);
  Decoded got = decode(sign(body));
  EXPECT_FALSE(got.ok);
  EXPECT_EQ(got.reject, BeaconReject::kMalformed);
}

TEST(Beacon, TenThousandRandomDatagramsAreNeverAccepted) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<size_t> size(0, kMaxBeaconBytes + 100);
  std::uniform_int_distribution<int> byte(0, 255);
  auto valid = encode_beacon(sample_beacon(), kKey);
  for (int i = 0; i < 10'000; ++i) {
    std::vector<uint8_t> d(size(rng));
    for (auto& x : d) x = static_cast<uint8_t>(byte(rng));
    // Half keep a valid header and cluster id, so they reach the MAC check and parser.
    if (i % 2 == 1 && d.size() >= 16) std::copy(valid.begin(), valid.begin() + 16, d.begin());
    Decoded got = decode(d);
    ASSERT_FALSE(got.ok) << "random datagram " << i << " of " << d.size() << " bytes was accepted";
    ASSERT_NE(got.reject, BeaconReject::kNone);
  }
}

TEST(Beacon, TenThousandRandomSingleByteChangesAreAcceptedOnlyWhenNothingChanged) {
  std::mt19937 rng(424242);
  auto valid = encode_beacon(sample_beacon(), kKey);
  std::uniform_int_distribution<size_t> pos(0, valid.size() - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  int unchanged = 0;
  for (int i = 0; i < 10'000; ++i) {
    auto d = valid;
    size_t at = pos(rng);
    d[at] = static_cast<uint8_t>(byte(rng));
    Decoded got = decode(d);
    if (d == valid) {
      ++unchanged;
      ASSERT_TRUE(got.ok) << "the unchanged beacon was rejected: " << beacon_reject_name(got.reject);
    } else {
      ASSERT_FALSE(got.ok) << "a change of byte " << at << " was accepted";
    }
  }
  EXPECT_GT(unchanged, 0);  // the case "unchanged" was exercised too
}

TEST(Beacon, RejectReasonsHaveMetricLabelNames) {
  EXPECT_STREQ(beacon_reject_name(BeaconReject::kBadMac), "bad_mac");
  EXPECT_STREQ(beacon_reject_name(BeaconReject::kOtherCluster), "other_cluster");
  EXPECT_STREQ(beacon_reject_name(BeaconReject::kReplay), "replay");
  EXPECT_STREQ(beacon_reject_name(BeaconReject::kStaleIncarnation), "stale_incarnation");
}

}  // namespace
}  // namespace clusterd
