#include "clusterd/node/agent.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <set>

#include "clusterd/common/crypto.h"

namespace clusterd {

namespace asio = boost::asio;

Agent::Agent(Config config, std::string cluster_key, NodeIdentity identity, TokenStore tokens)
    : config_(std::move(config)),
      key_(std::move(cluster_key)),
      cluster_id_(cluster_id_for_key(key_)),
      identity_(std::move(identity)),
      signals_(io_, SIGINT, SIGTERM),
      tick_timer_(io_),
      // Suspect after two and a half lost beacons, but always before the timeout.
      peers_(clock_,
             PeerTableOptions{std::min<int64_t>(config_.beacon_interval_ms * 5 / 2, config_.peer_timeout_ms * 3 / 4),
                              config_.peer_timeout_ms, 300'000}) {
  api_ = *parse_host_port(config_.api_addr, "api_addr");  // validated by validate_config
  inventory_ = collect_inventory(config_.data_dir);
  HttpApiOptions http;
  http.host = api_.host;
  http.port = api_.port;
  http.threads = std::max(128, 2 * config_.queue_depth + 32);
  http.forward_key = key_;
  http_ = std::make_unique<HttpApi>(*this, std::move(tokens), http);
}

Agent::~Agent() {
  if (http_) http_->stop();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Status Agent::choose_interfaces() {
  auto all = list_ipv4_interfaces();
  interfaces_.clear();
  for (const auto& itf : all) {
    bool named = std::find(config_.interfaces.begin(), config_.interfaces.end(), itf.name) != config_.interfaces.end();
    bool chosen = config_.interfaces.empty() ? (itf.up && !itf.loopback) : named;
    if (chosen) interfaces_.push_back({itf.name, itf.ipv4, itf.loopback ? "" : itf.broadcast});
  }
  for (const auto& name : config_.interfaces) {
    if (std::none_of(interfaces_.begin(), interfaces_.end(), [&](const auto& i) { return i.name == name; })) {
      return invalid_argument("--interface " + name + ": no such interface with an IPv4 address is up on this machine");
    }
  }
  if (interfaces_.empty() && config_.peers.empty()) {
    spdlog::warn("discovery: no up, non-loopback IPv4 interface and no --peer: this node can only find itself");
  }
  return Status::ok();
}

ResourceSummary Agent::resource_summary() const {
  std::lock_guard lock(state_mu_);
  ResourceSummary r;
  r.cores = static_cast<uint16_t>(std::clamp(inventory_.cores, 0, 65535));
  r.memory_total_bytes = inventory_.memory_total_bytes;
  r.memory_available_bytes = inventory_.memory_available_bytes;
  r.accelerators = static_cast<uint8_t>(std::min<size_t>(inventory_.accelerators.size(), 255));
  r.rdma_devices = static_cast<uint8_t>(std::min<size_t>(inventory_.rdma_devices.size(), 255));
  return r;
}

int Agent::run() {
  // One agent per data dir on a machine; a second one would share the node id.
  std::string lock_path = (config_.data_dir / "lock").string();
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0 || ::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    spdlog::critical("data dir {} is in use by another clusterd on this machine; give each agent its own --data-dir",
                     config_.data_dir.string());
    return kExitUnavailable;
  }
  if (Status s = choose_interfaces(); !s.is_ok()) {
    spdlog::critical("{}", s.message());
    return kExitConfig;
  }

  DiscoveryOptions d;
  d.key = key_;
  d.cluster_id = cluster_id_;
  d.port = config_.discovery_port;
  d.interfaces = interfaces_;
  for (const auto& p : config_.peers) d.static_peers.push_back(*parse_host_port(p, "peers"));
  d.multicast = config_.multicast;
  d.beacon_interval_ms = config_.beacon_interval_ms;
  d.probe_window_ms = std::min(300, config_.beacon_interval_ms);
  Beacon self;
  self.node_id = identity_.id;
  self.incarnation = identity_.incarnation;
  self.name = config_.name;
  self.control_port = config_.control_port;
  self.api_host = api_.host;
  self.api_port = api_.port;
  self.resources = resource_summary();
  discovery_ = std::make_unique<Discovery>(
      io_, d, self, peers_, [this](PeerEvent e, const PeerInfo& p) { on_peer_event(e, p); },
      [this](const Beacon& other, const std::string& address) {
        std::string msg = "node id " + identity_.id + " is already used by the live node '" + other.name + "' at " +
                          address + ". The data dir " + config_.data_dir.string() +
                          " was probably copied from that machine; delete " + (config_.data_dir / "node_id").string() +
                          " here to give this node its own id";
        if (clock_.now_ms() - started_ms_ < 3 * config_.beacon_interval_ms) {
          spdlog::critical("refusing to start: {}", msg);
          shutdown(kExitDuplicateId);
        } else {
          spdlog::error("{}", msg);
        }
      });

  ControlIdentity ci{key_, cluster_id_, identity_.id, config_.name};
  ControlPlane::Callbacks cc;
  cc.on_peer_ready = [this](const std::string& peer) {
    peers_.observe_traffic(peer);
    std::lock_guard lock(state_mu_);
    control_->send(
        peer, {{"type", "inventory"}, {"inventory", inventory_to_json(inventory_)}, {"data_port", config_.data_port}});
    control_->send(peer, {{"type", "models"}, {"models", announced_models_}});
  };
  cc.on_peer_message = [this](const std::string& peer, const nlohmann::json& m) { on_peer_message(peer, m); };
  cc.on_peer_lost = [this](const std::string& peer, const std::string& reason) {
    spdlog::debug("control: lost {}: {}", peer.substr(0, 8), reason);
  };
  control_ = std::make_unique<ControlPlane>(io_, ci, config_.control_port, cc);

  if (Status s = discovery_->open(); !s.is_ok()) {
    spdlog::critical("{}", s.message());
    return kExitUnavailable;
  }
  if (Status s = control_->listen(); !s.is_ok()) {
    spdlog::critical("{}", s.message());
    return kExitUnavailable;
  }
  auto data = DataListener::bind(config_.data_port);
  if (!data.is_ok()) {
    spdlog::critical("{}; choose another with --data-port", data.status().message());
    return kExitUnavailable;
  }
  data_listener_ = std::move(*data);
  if (Status s = http_->start(); !s.is_ok()) {
    spdlog::critical("{}", s.message());
    return kExitUnavailable;
  }

  std::string names;
  for (const auto& i : interfaces_) names += (names.empty() ? "" : ", ") + i.name + " " + i.address;
  spdlog::info("clusterd {} node '{}' id {} (incarnation {}) in cluster {}", CLUSTERD_VERSION, config_.name,
               identity_.id, identity_.incarnation, cluster_id_);
  spdlog::info("api http://{}  control tcp :{}  discovery udp :{} on [{}]{}", api_.to_string(), config_.control_port,
               config_.discovery_port, names, config_.multicast ? "" : " (multicast off)");

  started_ms_ = clock_.now_ms();
  signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("received {}, saying goodbye to peers", sig == SIGINT ? "SIGINT" : "SIGTERM");
    shutdown(kExitOk);
  });
  discovery_->start();
  tick();
  io_.run();
  {
    std::lock_guard lock(instances_mu_);
    for (auto& [name, entry] : instances_) {
      entry->cancelled = true;  // loads stop waiting for their group
      // Requests in flight end now (unavailable) rather than hold the HTTP server's stop.
      if (entry->instance && entry->spec.rank == 0) entry->instance->stop_scheduler();
    }
  }
  http_->stop();
  {
    std::lock_guard lock(instances_mu_);
    for (auto& [name, entry] : instances_) {  // coordinators release their followers
      if (entry->instance && entry->spec.rank == 0) entry->instance->unload();
    }
  }
  for (auto& t : loaders_) {
    if (t.joinable()) t.join();
  }
  instances_.clear();
  spdlog::info("stopped");
  return exit_code_;
}

void Agent::shutdown(int exit_code) {
  if (stopping_) return;
  stopping_ = true;
  exit_code_ = exit_code;
  tick_timer_.cancel();
  signals_.cancel();
  if (exit_code == kExitOk) {
    discovery_->stop();
    control_->stop();
  } else {
    discovery_->stop();
  }
  // Let the goodbyes reach the wire, then end the io loop.
  tick_timer_.expires_after(std::chrono::milliseconds(150));
  tick_timer_.async_wait([this](const boost::system::error_code&) { io_.stop(); });
}

void Agent::tick() {
  if (stopping_) return;
  int64_t now = clock_.now_ms();
  for (const auto& id : peers_.expire()) {
    spdlog::info("peer {} expired: nothing heard for {} ms", id.substr(0, 8), config_.peer_timeout_ms);
    control_->forget(id);
    std::lock_guard lock(state_mu_);
    peer_links_.erase(id);
  }
  auto peers = peers_.snapshot();
  for (const auto& p : peers) {
    if (p.status != PeerStatus::kGone) control_->want(p.node_id, p.address, p.control_port);
  }
  announce_models();
  if (now - last_control_tick_ms_ >= config_.beacon_interval_ms) {
    last_control_tick_ms_ = now;
    control_->tick();
    update_unicast_targets(peers);
    nlohmann::json known = nlohmann::json::array();
    for (const auto& p : peers) {
      if (p.status == PeerStatus::kAlive) known.push_back({{"address", p.address}, {"port", p.discovery_port}});
    }
    control_->broadcast({{"type", "peers"}, {"peers", known}});
    nlohmann::json links = nlohmann::json::array();
    for (const auto& l : control_->links()) {
      links.push_back({{"to", l.peer_id}, {"transport", l.transport}, {"rtt_us", l.rtt_us}, {"state", l.state}});
    }
    control_->broadcast({{"type", "links"}, {"links", links}});
  }
  if (now - last_inventory_ms_ >= 5000) {
    last_inventory_ms_ = now;
    nlohmann::json doc;
    {
      std::lock_guard lock(state_mu_);
      refresh_inventory(inventory_, config_.data_dir);
      doc = inventory_to_json(inventory_);
    }
    discovery_->update_resources(resource_summary());
    control_->broadcast({{"type", "inventory"}, {"inventory", doc}, {"data_port", config_.data_port}});
  }
  tick_timer_.expires_after(std::chrono::milliseconds(std::clamp(config_.beacon_interval_ms / 10, 10, 100)));
  tick_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) tick();
  });
}

void Agent::update_unicast_targets(const std::vector<PeerInfo>& peers) {
  if (config_.multicast) return;  // multicast and broadcast reach everyone already
  int64_t now = clock_.now_ms();
  std::set<std::string> endpoints;
  for (const auto& p : peers) {
    if (p.status != PeerStatus::kGone) endpoints.insert(p.address + ":" + std::to_string(p.discovery_port));
  }
  for (auto it = gossiped_endpoints_.begin(); it != gossiped_endpoints_.end();) {
    if (now - it->second > 2 * config_.peer_timeout_ms) {
      it = gossiped_endpoints_.erase(it);
    } else {
      endpoints.insert(it->first);
      ++it;
    }
  }
  for (const auto& p : config_.peers) endpoints.erase(p);  // sent to anyway
  for (const auto& i : interfaces_) endpoints.erase(i.address + ":" + std::to_string(config_.discovery_port));
  std::vector<HostPort> targets;
  for (const auto& e : endpoints) {
    if (auto hp = parse_host_port(e, "peer endpoint"); hp.is_ok()) targets.push_back(*hp);
  }
  discovery_->set_unicast_targets(std::move(targets));
}

void Agent::on_peer_event(PeerEvent event, const PeerInfo& p) {
  switch (event) {
    case PeerEvent::kJoined:
      spdlog::info("peer '{}' {} joined from {}", p.name, p.node_id.substr(0, 8), p.address);
      control_->want(p.node_id, p.address, p.control_port);
      break;
    case PeerEvent::kRestarted:
      spdlog::info("peer '{}' {} restarted (incarnation {})", p.name, p.node_id.substr(0, 8), p.incarnation);
      control_->forget(p.node_id);
      control_->want(p.node_id, p.address, p.control_port);
      break;
    case PeerEvent::kLeft:
      spdlog::info("peer '{}' {} left", p.name, p.node_id.substr(0, 8));
      control_->forget(p.node_id);
      break;
    default: break;
  }
}

void Agent::on_peer_message(const std::string& peer, const nlohmann::json& m) {
  peers_.observe_traffic(peer);
  const std::string type = m["type"].get<std::string>();
  if (type == "inventory") {
    auto it = m.find("inventory");
    if (it == m.end()) return;
    auto parsed = inventory_from_json(*it);
    if (!parsed.is_ok()) {
      spdlog::warn("control: ignoring an inventory from {}: {}", peer.substr(0, 8), parsed.status().message());
      return;
    }
    peers_.set_inventory(peer, inventory_to_json(*parsed));
    if (auto port = m.find("data_port");
        port != m.end() && port->is_number_unsigned() && port->get<uint64_t>() > 0 && port->get<uint64_t>() < 65536) {
      std::lock_guard lock(state_mu_);
      peer_data_ports_[peer] = static_cast<uint16_t>(port->get<uint64_t>());
    }
  } else if (type == "load") {
    if (auto spec = m.find("spec"); spec != m.end()) on_load_request(peer, *spec);
  } else if (type == "unload") {
    if (auto name = m.find("name"); name != m.end() && name->is_string()) on_unload_request(name->get<std::string>());
  } else if (type == "load_failed") {
    on_load_failed(peer, m);
  } else if (type == "load_progress") {
    on_load_progress(peer, m);
  } else if (type == "models") {
    // The models a peer coordinates, so that requests for them can be forwarded there.
    auto it = m.find("models");
    if (it == m.end() || !it->is_array() || it->size() > 1024) return;
    std::vector<std::string> names;
    for (const auto& n : *it) {
      if (n.is_string() && !n.get<std::string>().empty() && n.get<std::string>().size() <= 128) {
        names.push_back(n.get<std::string>());
      }
    }
    std::lock_guard lock(state_mu_);
    peer_models_[peer] = std::move(names);
  } else if (type == "links") {
    auto it = m.find("links");
    if (it == m.end() || !it->is_array() || it->size() > 1024) return;
    std::lock_guard lock(state_mu_);
    peer_links_[peer] = *it;
  } else if (type == "peers") {
    // Only addresses to send beacons to: membership still needs a beacon signed with the key.
    auto it = m.find("peers");
    if (it == m.end() || !it->is_array()) return;
    for (const auto& e : *it) {
      if (gossiped_endpoints_.size() >= 256) break;
      if (!e.is_object() || !e.contains("address") || !e["address"].is_string() || !e.contains("port") ||
          !e["port"].is_number_unsigned() || e["port"].get<uint64_t>() == 0 || e["port"].get<uint64_t>() > 65535) {
        continue;
      }
      gossiped_endpoints_[e["address"].get<std::string>() + ":" + std::to_string(e["port"].get<uint64_t>())] =
          clock_.now_ms();
    }
  } else if (type == "goodbye") {
    spdlog::info("peer {} said goodbye", peer.substr(0, 8));
    peers_.mark_gone(peer);
    control_->forget(peer);
  }
}

}  // namespace clusterd
