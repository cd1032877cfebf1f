#include "clusterd/discovery/discovery.h"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/multicast.hpp>

namespace clusterd {

namespace asio = boost::asio;
using asio::ip::udp;

Discovery::Discovery(asio::io_context& io, DiscoveryOptions options, Beacon self, PeerTable& peers,
                     std::function<void(PeerEvent, const PeerInfo&)> on_event,
                     std::function<void(const Beacon&, const std::string&)> on_duplicate_id)
    : io_(io),
      options_(std::move(options)),
      self_(std::move(self)),
      peers_(peers),
      on_event_(std::move(on_event)),
      on_duplicate_id_(std::move(on_duplicate_id)),
      socket_(io),
      timer_(io) {
  self_.cluster_id = options_.cluster_id;
}

Discovery::~Discovery() = default;

Status Discovery::open() {
  boost::system::error_code ec;
  socket_.open(udp::v4(), ec);
  if (ec) return io_error("discovery: cannot open a UDP socket: " + ec.message());
  socket_.set_option(udp::socket::reuse_address(true), ec);
  socket_.set_option(asio::socket_base::broadcast(true), ec);
  socket_.bind(udp::endpoint(asio::ip::address_v4::any(), options_.port), ec);
  if (ec) {
    return unavailable("discovery: cannot bind UDP port " + std::to_string(options_.port) + ": " + ec.message() +
                       "; choose another with --discovery-port");
  }
  if (options_.multicast) {
    socket_.set_option(asio::ip::multicast::hops(1), ec);
    socket_.set_option(asio::ip::multicast::enable_loopback(true), ec);
    auto group = asio::ip::make_address_v4(kDiscoveryMulticastGroup);
    for (const auto& itf : options_.interfaces) {
      socket_.set_option(asio::ip::multicast::join_group(group, asio::ip::make_address_v4(itf.address, ec)), ec);
      if (ec)
        spdlog::warn("discovery: cannot join {} on {} ({}): {}", kDiscoveryMulticastGroup, itf.name, itf.address,
                     ec.message());
    }
  }
  return Status::ok();
}

void Discovery::start() {
  receive();
  send(BeaconKind::kProbe);
  schedule_announce(options_.probe_window_ms);
}

void Discovery::stop() {
  if (stopped_) return;
  stopped_ = true;
  timer_.cancel();
  if (!probing_) send(BeaconKind::kGoodbye);
  boost::system::error_code ec;
  socket_.close(ec);
}

void Discovery::update_resources(const ResourceSummary& resources) { self_.resources = resources; }

void Discovery::set_unicast_targets(std::vector<HostPort> targets) { unicast_targets_ = std::move(targets); }

void Discovery::schedule_announce(int delay_ms) {
  timer_.expires_after(std::chrono::milliseconds(delay_ms));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    probing_ = false;
    send(BeaconKind::kAnnounce);
    schedule_announce(options_.beacon_interval_ms);
  });
}

void Discovery::send(BeaconKind kind) {
  self_.kind = kind;
  self_.sequence++;
  std::vector<uint8_t> datagram = encode_beacon(self_, options_.key);
  if (options_.multicast) {
    auto group = asio::ip::make_address_v4(kDiscoveryMulticastGroup);
    for (const auto& itf : options_.interfaces) {
      boost::system::error_code ec;
      socket_.set_option(asio::ip::multicast::outbound_interface(asio::ip::make_address_v4(itf.address, ec)), ec);
      send_to(datagram, udp::endpoint(group, options_.port));
      if (!itf.broadcast.empty()) {
        auto bcast = asio::ip::make_address_v4(itf.broadcast, ec);
        if (!ec) send_to(datagram, udp::endpoint(bcast, options_.port));
      }
    }
  }
  for (const auto& target : unicast_targets_) {
    boost::system::error_code ec;
    auto addr = asio::ip::make_address_v4(target.host, ec);
    if (!ec) send_to(datagram, udp::endpoint(addr, target.port));
  }
  for (const auto& peer : options_.static_peers) {
    boost::system::error_code ec;
    auto addr = asio::ip::make_address_v4(peer.host, ec);
    if (ec) {
      // A host name: resolve each time so a peer that moves is still found.
      udp::resolver resolver(io_);
      auto results = resolver.resolve(udp::v4(), peer.host, std::to_string(peer.port), ec);
      if (ec || results.empty()) continue;
      send_to(datagram, *results.begin());
    } else {
      send_to(datagram, udp::endpoint(addr, peer.port));
    }
  }
}

void Discovery::send_to(const std::vector<uint8_t>& datagram, const udp::endpoint& to) {
  boost::system::error_code ec;
  socket_.send_to(asio::buffer(datagram), to, 0, ec);
  if (ec) {
    spdlog::debug("discovery: send to {}:{} failed: {}", to.address().to_string(), to.port(), ec.message());
    return;
  }
  stats_.sent++;
}

void Discovery::receive() {
  socket_.async_receive_from(asio::buffer(buffer_), from_, [this](const boost::system::error_code& ec, size_t n) {
    if (stopped_ || ec == asio::error::operation_aborted) return;
    if (!ec) handle(n);
    receive();
  });
}

void Discovery::reply_to(const udp::endpoint& to) {
  if (probing_) return;
  self_.kind = BeaconKind::kAnnounce;
  self_.sequence++;
  send_to(encode_beacon(self_, options_.key), to);
}

void Discovery::handle(size_t bytes) {
  Beacon beacon;
  BeaconReject reject = BeaconReject::kNone;
  std::string address = from_.address().to_string();
  if (!decode_beacon(std::span(buffer_.data(), bytes), options_.key, options_.cluster_id, beacon, reject)) {
    stats_.rejected[static_cast<size_t>(reject)]++;
    spdlog::debug("discovery: dropped a datagram from {}: {}", address, beacon_reject_name(reject));
    return;
  }
  if (beacon.node_id == self_.node_id) {
    if (beacon.incarnation == self_.incarnation) return;  // our own, looped back
    if (beacon.kind == BeaconKind::kAnnounce && beacon.incarnation < self_.incarnation) {
      on_duplicate_id_(beacon, address);
    } else if (beacon.incarnation > self_.incarnation) {
      spdlog::error("discovery: node '{}' at {} uses this node's id {} (started later, it should refuse to run)",
                    beacon.name, address, beacon.node_id);
    }
    return;
  }
  if (beacon.kind == BeaconKind::kProbe) {
    stats_.accepted++;
    reply_to(from_);  // a node is starting: tell it about us now, not an interval later
    return;
  }
  PeerEvent event = peers_.observe_beacon(beacon, address, from_.port(), reject);
  if (event == PeerEvent::kRejected) {
    stats_.rejected[static_cast<size_t>(reject)]++;
    return;
  }
  if (event == PeerEvent::kDuplicate) {
    stats_.duplicates++;
    return;
  }
  stats_.accepted++;
  if (event == PeerEvent::kJoined || event == PeerEvent::kRestarted) reply_to(from_);
  if (event != PeerEvent::kRefreshed) {
    if (auto info = peers_.find(beacon.node_id)) on_event_(event, *info);
  }
}

}  // namespace clusterd
