#include "clusterd/discovery/peer_table.h"

namespace clusterd {

const char* peer_status_name(PeerStatus status) {
  switch (status) {
    case PeerStatus::kAlive: return "alive";
    case PeerStatus::kSuspect: return "suspect";
    case PeerStatus::kGone: return "gone";
  }
  return "unknown";
}

PeerTable::PeerTable(const Clock& clock, PeerTableOptions options) : clock_(clock), options_(options) {}

PeerEvent PeerTable::observe_beacon(const Beacon& b, const std::string& address, uint16_t port, BeaconReject& reject) {
  reject = BeaconReject::kNone;
  int64_t now = clock_.now_ms();
  std::lock_guard lock(mu_);
  auto it = peers_.find(b.node_id);
  PeerEvent event = PeerEvent::kRefreshed;
  if (it == peers_.end()) {
    if (b.kind == BeaconKind::kGoodbye) return PeerEvent::kLeft;  // never knew it; nothing to drop
    it = peers_.emplace(b.node_id, PeerInfo{}).first;
    it->second.node_id = b.node_id;
    it->second.first_seen_ms = now;
    event = PeerEvent::kJoined;
  } else {
    PeerInfo& p = it->second;
    if (b.incarnation < p.incarnation) {
      reject = BeaconReject::kStaleIncarnation;
      return PeerEvent::kRejected;
    }
    if (b.incarnation == p.incarnation && b.sequence == p.last_sequence) return PeerEvent::kDuplicate;
    if (b.incarnation == p.incarnation && b.sequence < p.last_sequence) {
      reject = BeaconReject::kReplay;
      return PeerEvent::kRejected;
    }
    if (b.incarnation > p.incarnation) {
      event = p.status == PeerStatus::kGone ? PeerEvent::kJoined : PeerEvent::kRestarted;
      p.inventory = nullptr;
    } else if (p.status == PeerStatus::kGone) {
      // A gone incarnation that speaks again (it was partitioned, not dead).
      event = PeerEvent::kJoined;
    }
  }
  PeerInfo& p = it->second;
  p.name = b.name;
  p.incarnation = b.incarnation;
  p.last_sequence = b.sequence;
  p.address = address;
  p.discovery_port = port;
  p.control_port = b.control_port;
  p.api_host = b.api_host;
  p.api_port = b.api_port;
  p.resources = b.resources;
  if (b.kind == BeaconKind::kGoodbye) {
    if (p.status != PeerStatus::kGone) p.gone_since_ms = now;
    p.status = PeerStatus::kGone;
    p.left = true;
    return PeerEvent::kLeft;
  }
  p.last_seen_ms = now;
  p.status = PeerStatus::kAlive;
  p.gone_since_ms = 0;
  p.left = false;
  return event;
}

void PeerTable::observe_traffic(const std::string& node_id) {
  int64_t now = clock_.now_ms();
  std::lock_guard lock(mu_);
  auto it = peers_.find(node_id);
  if (it == peers_.end() || it->second.status == PeerStatus::kGone) return;
  it->second.last_seen_ms = now;
  it->second.status = PeerStatus::kAlive;
}

void PeerTable::mark_gone(const std::string& node_id) {
  int64_t now = clock_.now_ms();
  std::lock_guard lock(mu_);
  auto it = peers_.find(node_id);
  if (it == peers_.end() || it->second.status == PeerStatus::kGone) return;
  it->second.status = PeerStatus::kGone;
  it->second.gone_since_ms = now;
  it->second.left = true;
}

void PeerTable::set_inventory(const std::string& node_id, nlohmann::json inventory) {
  std::lock_guard lock(mu_);
  auto it = peers_.find(node_id);
  if (it != peers_.end()) it->second.inventory = std::move(inventory);
}

std::vector<std::string> PeerTable::expire() {
  int64_t now = clock_.now_ms();
  std::vector<std::string> gone;
  std::lock_guard lock(mu_);
  for (auto it = peers_.begin(); it != peers_.end();) {
    PeerInfo& p = it->second;
    int64_t silent = now - p.last_seen_ms;
    if (p.status == PeerStatus::kGone) {
      if (now - p.gone_since_ms >= options_.forget_after_ms) {
        it = peers_.erase(it);
        continue;
      }
    } else if (silent >= options_.expire_after_ms) {
      p.status = PeerStatus::kGone;
      p.gone_since_ms = now;
      gone.push_back(p.node_id);
    } else if (silent >= options_.suspect_after_ms) {
      p.status = PeerStatus::kSuspect;
    }
    ++it;
  }
  return gone;
}

std::vector<PeerInfo> PeerTable::snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<PeerInfo> out;
  out.reserve(peers_.size());
  for (const auto& [id, p] : peers_) out.push_back(p);
  return out;
}

std::optional<PeerInfo> PeerTable::find(const std::string& node_id) const {
  std::lock_guard lock(mu_);
  auto it = peers_.find(node_id);
  if (it == peers_.end()) return std::nullopt;
  return it->second;
}

}  // namespace clusterd
