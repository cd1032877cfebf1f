// The peer table: every node this one has heard of, with liveness derived from the
// last beacon or control-link traffic. Thread-safe; time comes from an injected Clock.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "clusterd/common/clock.h"
#include "clusterd/discovery/beacon.h"

namespace clusterd {

enum class PeerStatus { kAlive, kSuspect, kGone };
const char* peer_status_name(PeerStatus status);

struct PeerInfo {
  std::string node_id;
  std::string name;
  uint64_t incarnation = 0;
  uint64_t last_sequence = 0;
  std::string address;          // IPv4 the beacons come from
  uint16_t discovery_port = 0;  // UDP port they come from (its discovery port)
  uint16_t control_port = 0;
  std::string api_host;
  uint16_t api_port = 0;
  ResourceSummary resources;
  nlohmann::json inventory;  // full inventory from the control link; null until received
  PeerStatus status = PeerStatus::kAlive;
  int64_t first_seen_ms = 0;
  int64_t last_seen_ms = 0;
  int64_t gone_since_ms = 0;
  bool left = false;  // gone by its own goodbye, not by silence
};

enum class PeerEvent {
  kJoined,     // first beacon from this node, or back after being gone
  kRestarted,  // a newer incarnation of a known node
  kRefreshed,  // a newer beacon of the known incarnation
  kLeft,       // goodbye beacon
  kDuplicate,  // the same beacon again (it came by multicast and broadcast): ignored
  kRejected,   // replay or stale incarnation; see the reject reason
};

struct PeerTableOptions {
  int64_t suspect_after_ms = 2000;    // silence before a peer is shown as suspect
  int64_t expire_after_ms = 3500;     // silence before a peer is gone
  int64_t forget_after_ms = 300'000;  // how long a gone peer stays listed
};

class PeerTable {
 public:
  PeerTable(const Clock& clock, PeerTableOptions options);

  // Applies an authenticated beacon received from `address`:`port`. Rejections set `reject`.
  PeerEvent observe_beacon(const Beacon& beacon, const std::string& address, uint16_t port, BeaconReject& reject);

  // Control-link traffic from a peer counts as a sign of life (but cannot revive a gone
  // peer: only a fresh beacon does).
  void observe_traffic(const std::string& node_id);

  // Marks `node_id` gone at once, as left (a clean shutdown seen on the control link).
  void mark_gone(const std::string& node_id);

  void set_inventory(const std::string& node_id, nlohmann::json inventory);

  // Moves silent peers to suspect and gone, forgets long-gone ones. Returns the ids
  // that became gone in this call.
  std::vector<std::string> expire();

  std::vector<PeerInfo> snapshot() const;
  std::optional<PeerInfo> find(const std::string& node_id) const;

 private:
  const Clock& clock_;
  PeerTableOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, PeerInfo> peers_;
};

}  // namespace clusterd
