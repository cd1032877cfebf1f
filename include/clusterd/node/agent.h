// The node agent: wires identity, discovery, the control plane, the inventory and the
// HTTP API together, and owns the threads (one io thread, the HTTP pool).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "clusterd/api/http_api.h"
#include "clusterd/common/clock.h"
#include "clusterd/common/config.h"
#include "clusterd/common/node_identity.h"
#include "clusterd/discovery/discovery.h"
#include "clusterd/discovery/peer_table.h"
#include "clusterd/node/inventory.h"
#include "clusterd/transport/control_plane.h"

namespace clusterd {

// Exit codes of `clusterd start`.
constexpr int kExitOk = 0;
constexpr int kExitConfig = 1;       // bad flags, config, key or token file
constexpr int kExitDuplicateId = 2;  // another live node has this node's id
constexpr int kExitUnavailable = 3;  // a port is taken, the data dir is locked...

class Agent final : public ApiBackend {
 public:
  Agent(Config config, std::string cluster_key, NodeIdentity identity, TokenStore tokens);
  ~Agent() override;

  // Binds every socket, serves until SIGINT/SIGTERM, says goodbye. Returns an exit code.
  int run();

  nlohmann::json node_document() const override;
  nlohmann::json devices_document() const override;
  nlohmann::json cluster_document() const override;
  void write_metrics(MetricsWriter& out) const override;

 private:
  Status choose_interfaces();
  void tick();
  void update_unicast_targets(const std::vector<PeerInfo>& peers);
  void shutdown(int exit_code);
  void on_peer_event(PeerEvent event, const PeerInfo& peer);
  void on_peer_message(const std::string& peer_id, const nlohmann::json& message);
  nlohmann::json self_device() const;
  nlohmann::json peer_device(const PeerInfo& peer) const;
  ResourceSummary resource_summary() const;

  Config config_;
  std::string key_;
  std::string cluster_id_;
  NodeIdentity identity_;
  HostPort api_;
  SteadyClock clock_;
  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer tick_timer_;
  PeerTable peers_;
  std::vector<DiscoveryInterface> interfaces_;
  std::unique_ptr<Discovery> discovery_;
  std::unique_ptr<ControlPlane> control_;
  std::unique_ptr<HttpApi> http_;
  mutable std::mutex state_mu_;  // guards inventory_ and peer_links_ (read by HTTP threads)
  Inventory inventory_;
  std::map<std::string, nlohmann::json> peer_links_;  // links each peer reports, by peer id
  // Discovery endpoints ("ip:port") peers told us about, with when they last did (io thread).
  std::map<std::string, int64_t> gossiped_endpoints_;
  int64_t started_ms_ = 0;
  int64_t last_control_tick_ms_ = 0;
  int64_t last_inventory_ms_ = 0;
  int exit_code_ = kExitOk;
  bool stopping_ = false;
  int lock_fd_ = -1;
};

}  // namespace clusterd
