// The control plane: one authenticated control link per peer pair. The node with the
// smaller id dials, the other accepts, so a pair never holds two links. Runs on one
// io thread; links() may be read from any thread.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "clusterd/common/status.h"
#include "clusterd/transport/control_link.h"

namespace clusterd {

struct LinkInfo {
  std::string peer_id;
  std::string peer_name;
  std::string address;
  std::string transport = "tcp";
  std::string state;  // "up", "connecting", "down"
  int64_t rtt_us = -1;
  std::string last_error;
};

struct ControlPlaneStats {
  std::atomic<uint64_t> links_established{0};
  std::atomic<uint64_t> handshake_failures{0};  // wrong key, other cluster, bad hello, timeout
  std::atomic<uint64_t> frame_errors{0};        // oversize or malformed frames after the handshake
};

class ControlPlane {
 public:
  struct Callbacks {
    std::function<void(const std::string& peer_id)> on_peer_ready;
    std::function<void(const std::string& peer_id, const nlohmann::json& message)> on_peer_message;
    std::function<void(const std::string& peer_id, const std::string& reason)> on_peer_lost;
  };

  ControlPlane(boost::asio::io_context& io, ControlIdentity self, uint16_t port, Callbacks callbacks);
  ~ControlPlane();

  // Binds the TCP listener on all IPv4 addresses. Errors name the port and the fix.
  Status listen();
  // Wants a link to `peer_id` at host:port; dials now if this side is the dialer and no
  // link exists, else later with backoff. Idempotent.
  void want(const std::string& peer_id, const std::string& host, uint16_t port);
  // No longer wants the link: closes it, stops redialing.
  void forget(const std::string& peer_id);
  // Called every tick: pings ready links, redials wanted ones whose backoff elapsed.
  void tick();

  void send(const std::string& peer_id, const nlohmann::json& message);
  void broadcast(const nlohmann::json& message);
  // Says goodbye on every link and closes them; stops accepting.
  void stop();

  std::vector<LinkInfo> links() const;
  const ControlPlaneStats& stats() const { return stats_; }

 private:
  struct Want {
    std::string host;
    uint16_t port = 0;
    int64_t next_dial_ms = 0;
    int backoff_ms = 100;
    bool dialing = false;
    std::string last_error;
  };

  void accept();
  void dial(const std::string& peer_id);
  ControlLink::Callbacks link_callbacks();
  void publish();  // refreshes the snapshot links() returns
  void log_refusal(const std::string& remote, const std::string& reason);

  boost::asio::io_context& io_;
  ControlIdentity self_;
  uint16_t port_;
  Callbacks callbacks_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::map<std::string, Want> wanted_;
  std::map<std::string, std::shared_ptr<ControlLink>> ready_;  // by peer id
  std::set<std::shared_ptr<ControlLink>> handshaking_;
  ControlPlaneStats stats_;
  bool stopped_ = false;
  int64_t refusal_window_start_ms_ = 0;
  int refusals_in_window_ = 0;
  int refusals_suppressed_ = 0;
  mutable std::mutex snapshot_mu_;
  std::vector<LinkInfo> snapshot_;
};

}  // namespace clusterd
