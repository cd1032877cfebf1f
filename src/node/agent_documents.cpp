// What the agent reports through the HTTP API: /v1/node, /v1/devices, /v1/cluster and
// its families in /metrics.
#include <algorithm>

#include "clusterd/node/agent.h"

namespace clusterd {

static nlohmann::json json_array_or_empty(const nlohmann::json& doc, const char* key) {
  auto it = doc.find(key);
  return it != doc.end() && it->is_array() ? *it : nlohmann::json::array();
}

nlohmann::json Agent::node_document() const {
  std::lock_guard lock(state_mu_);
  nlohmann::json addresses = nlohmann::json::array();
  for (const auto& i : interfaces_) addresses.push_back(i.address);
  nlohmann::json resources = inventory_to_json(inventory_);
  nlohmann::json rdma = resources["rdma_devices"];
  resources.erase("rdma_devices");
  return {{"id", identity_.id},
          {"name", config_.name},
          {"version", CLUSTERD_VERSION},
          {"cluster_id", cluster_id_},
          {"incarnation", identity_.incarnation},
          {"addresses", addresses},
          {"api", api_.to_string()},
          {"control", (interfaces_.empty() ? std::string("0.0.0.0") : interfaces_[0].address) + ":" +
                          std::to_string(config_.control_port)},
          {"discovery_port", config_.discovery_port},
          {"uptime_ms", clock_.now_ms() - started_ms_},
          {"resources", resources},
          {"rdma_devices", rdma},
          {"rdma_status", inventory_.rdma_status}};
}

nlohmann::json Agent::self_device() const {
  std::lock_guard lock(state_mu_);
  nlohmann::json inv = inventory_to_json(inventory_);
  return {{"id", identity_.id},
          {"name", config_.name},
          {"status", "alive"},
          {"address", interfaces_.empty() ? std::string("127.0.0.1") : interfaces_[0].address},
          {"cores", inventory_.cores},
          {"memory_total_bytes", inventory_.memory_total_bytes},
          {"memory_available_bytes", inventory_.memory_available_bytes},
          {"accelerators", inv["accelerators"]},
          {"rdma_devices", inv["rdma_devices"]},
          {"last_seen_ms", 0},
          {"self", true}};
}

nlohmann::json Agent::peer_device(const PeerInfo& p) const {
  nlohmann::json d = {{"id", p.node_id},
                      {"name", p.name},
                      {"status", peer_status_name(p.status)},
                      {"address", p.address},
                      {"cores", p.resources.cores},
                      {"memory_total_bytes", p.resources.memory_total_bytes},
                      {"memory_available_bytes", p.resources.memory_available_bytes},
                      {"accelerators", nlohmann::json::array()},
                      {"rdma_devices", nlohmann::json::array()},
                      {"last_seen_ms", std::max<int64_t>(0, clock_.now_ms() - p.last_seen_ms)},
                      {"left", p.left},
                      {"self", false}};
  if (p.inventory.is_object()) {  // the full inventory, once the control link delivered it
    d["accelerators"] = json_array_or_empty(p.inventory, "accelerators");
    d["rdma_devices"] = json_array_or_empty(p.inventory, "rdma_devices");
    d["memory_available_bytes"] = p.inventory.value("memory_available_bytes", p.resources.memory_available_bytes);
  }
  return d;
}

nlohmann::json Agent::devices_document() const {
  nlohmann::json nodes = nlohmann::json::array();
  nodes.push_back(self_device());
  for (const auto& p : peers_.snapshot()) nodes.push_back(peer_device(p));
  return {{"nodes", nodes}};
}

nlohmann::json Agent::cluster_document() const {
  nlohmann::json doc = devices_document();
  auto peers = peers_.snapshot();
  nlohmann::json links = nlohmann::json::array();
  bool healthy = true;
  for (const auto& p : peers) {
    // A node that said goodbye left on purpose; one that went silent is a problem.
    if (p.status == PeerStatus::kSuspect || (p.status == PeerStatus::kGone && !p.left)) healthy = false;
  }
  for (const auto& l : control_->links()) {
    links.push_back({{"from", identity_.id},
                     {"to", l.peer_id},
                     {"transport", l.transport},
                     {"rtt_us", l.rtt_us},
                     {"state", l.state}});
    auto peer = std::find_if(peers.begin(), peers.end(), [&](const PeerInfo& p) { return p.node_id == l.peer_id; });
    if (l.state != "up" && peer != peers.end() && peer->status == PeerStatus::kAlive) healthy = false;
  }
  {
    std::lock_guard lock(state_mu_);
    for (const auto& [from, reported] : peer_links_) {
      for (const auto& l : reported) {
        if (!l.is_object() || l.value("to", "") == identity_.id) continue;  // ours is listed already
        links.push_back({{"from", from},
                         {"to", l.value("to", "")},
                         {"transport", l.value("transport", "tcp")},
                         {"rtt_us", l.value("rtt_us", -1)},
                         {"state", l.value("state", "unknown")}});
      }
    }
  }
  return {{"cluster_id", cluster_id_}, {"nodes", doc["nodes"]}, {"links", links}, {"healthy", healthy}};
}

void Agent::write_metrics(MetricsWriter& out) const {
  out.family("clusterd_build_info", "gauge", "Build information; the value is always 1.");
  out.sample("clusterd_build_info", {{"version", CLUSTERD_VERSION}}, 1);

  auto peers = peers_.snapshot();
  out.family("clusterd_peers", "gauge", "Known peers (this node excluded), by status.");
  for (PeerStatus s : {PeerStatus::kAlive, PeerStatus::kSuspect, PeerStatus::kGone}) {
    auto n = std::count_if(peers.begin(), peers.end(), [&](const PeerInfo& p) { return p.status == s; });
    out.sample("clusterd_peers", {{"status", peer_status_name(s)}}, static_cast<double>(n));
  }

  const DiscoveryStats& d = discovery_->stats();
  out.family("clusterd_beacons_sent_total", "counter", "Discovery datagrams sent (every destination counts).");
  out.sample("clusterd_beacons_sent_total", static_cast<double>(d.sent.load()));
  out.family("clusterd_beacons_received_total", "counter", "Authenticated discovery beacons accepted.");
  out.sample("clusterd_beacons_received_total", static_cast<double>(d.accepted.load()));
  out.family("clusterd_beacons_duplicate_total", "counter",
             "Beacons received a second time by another path (multicast and broadcast) and ignored.");
  out.sample("clusterd_beacons_duplicate_total", static_cast<double>(d.duplicates.load()));
  out.family("clusterd_beacons_rejected_total", "counter", "Discovery datagrams dropped, by reason.");
  for (int r = 1; r <= static_cast<int>(BeaconReject::kStaleIncarnation); ++r) {
    out.sample("clusterd_beacons_rejected_total", {{"reason", beacon_reject_name(static_cast<BeaconReject>(r))}},
               static_cast<double>(d.rejected[r].load()));
  }

  auto links = control_->links();
  out.family("clusterd_control_links", "gauge", "Control links to peers, by state.");
  for (const char* state : {"up", "connecting", "down"}) {
    auto n = std::count_if(links.begin(), links.end(), [&](const LinkInfo& l) { return l.state == state; });
    out.sample("clusterd_control_links", {{"state", state}}, static_cast<double>(n));
  }
  out.family("clusterd_control_link_rtt_seconds", "gauge", "Latest control-link round trip to each peer.");
  for (const auto& l : links) {
    if (l.state == "up" && l.rtt_us >= 0) {
      out.sample("clusterd_control_link_rtt_seconds", {{"peer", l.peer_id}, {"peer_name", l.peer_name}},
                 static_cast<double>(l.rtt_us) / 1e6);
    }
  }
  const ControlPlaneStats& c = control_->stats();
  out.family("clusterd_control_links_established_total", "counter", "Control links authenticated and up.");
  out.sample("clusterd_control_links_established_total", static_cast<double>(c.links_established.load()));
  out.family("clusterd_control_handshake_failures_total", "counter",
             "Control connections refused during the handshake (wrong key, other cluster, timeout).");
  out.sample("clusterd_control_handshake_failures_total", static_cast<double>(c.handshake_failures.load()));
  out.family("clusterd_control_frame_errors_total", "counter",
             "Control links closed for an oversize or malformed frame.");
  out.sample("clusterd_control_frame_errors_total", static_cast<double>(c.frame_errors.load()));

  out.family("clusterd_process_resident_memory_bytes", "gauge", "Resident memory of this clusterd process.");
  out.sample("clusterd_process_resident_memory_bytes", process_resident_memory_bytes());
  write_serving_metrics(out);
}

}  // namespace clusterd
