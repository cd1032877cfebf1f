// Discovery beacons: the UDP datagrams nodes announce themselves with.
// Wire format v1 (big-endian, documented in docs/wire-formats.md), HMAC-SHA256 last:
//   magic "CLSD" | version u8 | kind u8 | flags u16 | cluster id 8B | node id 16B |
//   incarnation u64 | sequence u64 | control port u16 | api port u16 |
//   name (u8 len + bytes) | api host (u8 len + bytes) |
//   cores u16 | memory total u64 | memory available u64 | accelerators u8 | rdma devices u8 |
//   mac 32B over everything before it.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace clusterd {

constexpr uint8_t kBeaconVersion = 1;
constexpr size_t kMaxBeaconBytes = 1200;
constexpr size_t kMaxBeaconNameBytes = 63;

enum class BeaconKind : uint8_t {
  kAnnounce = 1,  // "I am alive"
  kGoodbye = 2,   // clean shutdown: drop me now
  kProbe = 3,     // sent at start-up: "who is there?"; receivers answer with an announce
};

struct ResourceSummary {
  uint16_t cores = 0;
  uint64_t memory_total_bytes = 0;
  uint64_t memory_available_bytes = 0;
  uint8_t accelerators = 0;
  uint8_t rdma_devices = 0;
};

struct Beacon {
  BeaconKind kind = BeaconKind::kAnnounce;
  std::string cluster_id;  // 16 hex characters, see cluster_id_for_key
  std::string node_id;     // UUID text
  uint64_t incarnation = 0;
  uint64_t sequence = 0;  // grows by one with every beacon of an incarnation
  uint16_t control_port = 0;
  uint16_t api_port = 0;
  std::string name;
  std::string api_host;
  ResourceSummary resources;
};

// Why a datagram was dropped; the names label clusterd_beacons_rejected_total.
enum class BeaconReject {
  kNone = 0,
  kMalformed,  // truncated, too long, bad field
  kBadMagic,   // not a clusterd datagram at all
  kUnsupportedVersion,
  kOtherCluster,      // a different cluster id (another key)
  kBadMac,            // right cluster id, wrong MAC: forged or corrupted
  kReplay,            // a sequence number already seen for this incarnation
  kStaleIncarnation,  // an incarnation older than the one known
};
const char* beacon_reject_name(BeaconReject reason);

// Serializes and signs `beacon` with `key`. Fields too long for the format are
// truncated (names are checked by config validation before they get here).
std::vector<uint8_t> encode_beacon(const Beacon& beacon, std::string_view key);

// Parses and authenticates a datagram. On failure `reject` says why and the beacon
// is unspecified. `expected_cluster_id` is checked before the MAC.
bool decode_beacon(std::span<const uint8_t> datagram, std::string_view key, const std::string& expected_cluster_id,
                   Beacon& beacon, BeaconReject& reject);

}  // namespace clusterd
