// The node agent: wires identity, discovery, the control plane, the inventory and the
// HTTP API together, and owns the threads (one io thread, the HTTP pool).
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "clusterd/api/http_api.h"
#include "clusterd/collective/group.h"
#include "clusterd/common/clock.h"
#include "clusterd/common/config.h"
#include "clusterd/common/node_identity.h"
#include "clusterd/discovery/discovery.h"
#include "clusterd/discovery/peer_table.h"
#include "clusterd/node/inventory.h"
#include "clusterd/node/slices.h"
#include "clusterd/serving/instance.h"
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
  Result<nlohmann::json> load_model(const nlohmann::json& body) override;
  Result<nlohmann::json> unload_model(const nlohmann::json& body) override;
  nlohmann::json instances_document() const override;
  Status check_model(const std::string& model) const override;
  Result<std::unique_ptr<PendingCompletion>> begin_completion(const CompletionRequest& request) override;
  nlohmann::json models_list() const override;
  std::optional<PeerRoute> coordinator_route(const std::string& model) const override;

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
  // Model instances (agent_models.cpp).
  struct InstanceEntry {
    std::string name;
    std::string coordinator_id;
    std::string coordinator_name;
    std::string strategy;
    std::string state;  // loading, ready, degraded, failed, unloaded
    std::string error;
    nlohmann::json plan;
    InstanceSpec spec;
    std::unique_ptr<ModelInstance> instance;  // this node's rank, once loaded
    std::vector<double> progress;             // per rank, 0..1 (instances_mu_)
    std::vector<std::string> rank_ids;        // node ids by rank (the coordinator's entry)
    std::atomic<bool> cancelled{false};       // a rank's load: the coordinator unloaded it
  };
  void on_load_request(const std::string& from, const nlohmann::json& spec);
  void on_unload_request(const std::string& name);
  void on_load_failed(const std::string& from, const nlohmann::json& message);
  void on_load_progress(const std::string& from, const nlohmann::json& message);
  // A rank's load on this node (a loader thread): its slices, then the group.
  void load_rank(const std::shared_ptr<InstanceEntry>& entry, const std::string& from);
  // The manifest of the model file at `path`, built once per path, size and mtime
  // (load_mu_ held); `progress` gets 0..1 while the file is hashed.
  Result<std::shared_ptr<const ManifestDocument>> manifest_for(const std::string& path,
                                                               const std::function<void(double)>& progress);
  // Fails while forming `entry`'s group once a rank reported failure or left.
  Status check_forming(const InstanceEntry& entry) const;
  nlohmann::json instance_document(const InstanceEntry& entry) const;
  void send_to_peer(const std::string& peer, nlohmann::json message);  // from any thread
  // Tells peers when the set of models this node coordinates changes (io thread).
  void announce_models();
  // Serving families of /metrics for the instances this node coordinates (agent_completions.cpp).
  void write_serving_metrics(MetricsWriter& out) const;
  // The instance `model` this node coordinates, or the error to return.
  Result<std::shared_ptr<InstanceEntry>> coordinated_instance(const std::string& model) const;

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
  std::map<std::string, uint16_t> peer_data_ports_;              // by peer id (state_mu_)
  std::map<std::string, std::vector<std::string>> peer_models_;  // models each peer coordinates (state_mu_)
  nlohmann::json announced_models_ = nlohmann::json::array();    // what peers were last told (io thread)
  std::unique_ptr<DataListener> data_listener_;
  std::mutex load_mu_;  // one load at a time: the data listener serves one forming group
  mutable std::mutex instances_mu_;
  std::map<std::string, std::shared_ptr<InstanceEntry>> instances_;
  // Loads this node coordinated that failed, by name, shown as "failed" until the
  // name is loaded again or unloaded (instances_mu_).
  std::map<std::string, std::shared_ptr<InstanceEntry>> failed_instances_;
  std::map<std::string, std::shared_ptr<const ManifestDocument>> manifests_;  // by path|size|mtime (load_mu_)
  std::vector<std::thread> loaders_;                                          // peers' loads, joined at shutdown
  int64_t started_ms_ = 0;
  int64_t last_control_tick_ms_ = 0;
  int64_t last_inventory_ms_ = 0;
  int exit_code_ = kExitOk;
  bool stopping_ = false;
  int lock_fd_ = -1;
};

}  // namespace clusterd
