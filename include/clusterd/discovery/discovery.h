// The discovery service: sends beacons (multicast, broadcast, static peers), receives
// and authenticates them, and keeps the PeerTable current. Runs on the caller's
// io_context (one thread); statistics are readable from any thread.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "clusterd/common/config.h"
#include "clusterd/common/status.h"
#include "clusterd/discovery/beacon.h"
#include "clusterd/discovery/peer_table.h"

namespace clusterd {

// The multicast group beacons go to (organization-local scope, RFC 2365).
constexpr const char* kDiscoveryMulticastGroup = "239.255.77.88";

struct DiscoveryInterface {
  std::string name;
  std::string address;    // this node's IPv4 on it
  std::string broadcast;  // empty: no broadcast on this interface
};

struct DiscoveryOptions {
  std::string key;         // the cluster key
  std::string cluster_id;  // cluster_id_for_key(key)
  uint16_t port = 8888;
  std::vector<DiscoveryInterface> interfaces;
  std::vector<HostPort> static_peers;
  bool multicast = true;
  int beacon_interval_ms = 1000;
  int probe_window_ms = 300;  // listening time at start-up before the first announce
};

struct DiscoveryStats {
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> duplicates{0};              // the same beacon by two paths
  std::array<std::atomic<uint64_t>, 8> rejected{};  // indexed by BeaconReject
};

class Discovery {
 public:
  // `self` is this node's beacon template (kind, sequence are filled in per send).
  // `on_event` runs on the io thread for every accepted beacon's effect on the table.
  // `on_duplicate_id` runs when a live node announces this node's id with an older
  // incarnation: this data dir was copied and this node must not go on.
  Discovery(boost::asio::io_context& io, DiscoveryOptions options, Beacon self, PeerTable& peers,
            std::function<void(PeerEvent, const PeerInfo&)> on_event,
            std::function<void(const Beacon& other, const std::string& address)> on_duplicate_id);
  ~Discovery();

  // Binds the socket and joins the group. Errors name the port and the fix.
  Status open();
  // Sends a probe, then announces every interval after the probe window.
  void start();
  // Sends goodbye beacons and stops the timers. Safe to call once from the io thread.
  void stop();

  void update_resources(const ResourceSummary& resources);
  // More unicast destinations for announces, besides the static peers: known peers and
  // addresses other nodes told us about, so that with multicast off a single --peer
  // seed is enough for everyone to find everyone.
  void set_unicast_targets(std::vector<HostPort> targets);
  const DiscoveryStats& stats() const { return stats_; }
  bool probing() const { return probing_; }

 private:
  void send(BeaconKind kind);
  void send_to(const std::vector<uint8_t>& datagram, const boost::asio::ip::udp::endpoint& to);
  void schedule_announce(int delay_ms);
  void receive();
  void handle(size_t bytes);
  void reply_to(const boost::asio::ip::udp::endpoint& to);

  boost::asio::io_context& io_;
  DiscoveryOptions options_;
  Beacon self_;
  PeerTable& peers_;
  std::function<void(PeerEvent, const PeerInfo&)> on_event_;
  std::function<void(const Beacon&, const std::string&)> on_duplicate_id_;
  boost::asio::ip::udp::socket socket_;
  boost::asio::steady_timer timer_;
  boost::asio::ip::udp::endpoint from_;
  std::array<uint8_t, 2048> buffer_{};
  DiscoveryStats stats_;
  std::vector<HostPort> unicast_targets_;
  bool probing_ = true;
  bool stopped_ = false;
};

}  // namespace clusterd
