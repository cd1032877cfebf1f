#include "clusterd/transport/control_plane.h"

#include <spdlog/spdlog.h>

#include <boost/asio/connect.hpp>

#include "clusterd/common/clock.h"

namespace clusterd {

namespace asio = boost::asio;
using asio::ip::tcp;

constexpr size_t kMaxHandshakingLinks = 64;  // unauthenticated connections held at once
constexpr int kMaxBackoffMs = 5000;

static int64_t steady_ms() { return SteadyClock().now_ms(); }

ControlPlane::ControlPlane(asio::io_context& io, ControlIdentity self, uint16_t port, Callbacks callbacks)
    : io_(io), self_(std::move(self)), port_(port), callbacks_(std::move(callbacks)), acceptor_(io) {}

ControlPlane::~ControlPlane() = default;

Status ControlPlane::listen() {
  boost::system::error_code ec;
  acceptor_.open(tcp::v4(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(tcp::endpoint(asio::ip::address_v4::any(), port_), ec);
  if (!ec) acceptor_.listen(64, ec);
  if (ec) {
    return unavailable("control: cannot listen on TCP port " + std::to_string(port_) + ": " + ec.message() +
                       "; is another clusterd running? choose another with --control-port");
  }
  accept();
  return Status::ok();
}

void ControlPlane::accept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
    if (stopped_ || ec == asio::error::operation_aborted) return;
    if (!ec) {
      if (handshaking_.size() >= kMaxHandshakingLinks) {
        spdlog::warn("control: refusing a connection: {} handshakes already in progress", handshaking_.size());
      } else {
        auto link = std::make_shared<ControlLink>(std::move(socket), self_, "", link_callbacks());
        handshaking_.insert(link);
        link->start();
      }
    }
    accept();
  });
}

ControlLink::Callbacks ControlPlane::link_callbacks() {
  ControlLink::Callbacks cb;
  cb.on_ready = [this](const std::shared_ptr<ControlLink>& link) {
    handshaking_.erase(link);
    const std::string& id = link->peer_id();
    if (auto old = ready_.find(id); old != ready_.end() && old->second != link) {
      auto previous = old->second;
      ready_.erase(old);
      previous->close("");  // replaced by the newer connection
    }
    ready_[id] = link;
    if (auto w = wanted_.find(id); w != wanted_.end()) {
      w->second.backoff_ms = 100;
      w->second.dialing = false;
      w->second.last_error.clear();
    }
    stats_.links_established++;
    spdlog::info("control: link to {} ({}) at {} is up", link->peer_name(), id.substr(0, 8), link->remote_address());
    link->ping();
    publish();
    if (callbacks_.on_peer_ready) callbacks_.on_peer_ready(id);
  };
  cb.on_message = [this](const std::shared_ptr<ControlLink>& link, const nlohmann::json& m) {
    if (m["type"] == "pong") publish();  // a fresh RTT
    if (callbacks_.on_peer_message) callbacks_.on_peer_message(link->peer_id(), m);
  };
  cb.on_closed = [this](const std::shared_ptr<ControlLink>& link, const std::string& reason) {
    bool was_handshaking = handshaking_.erase(link) > 0;
    const std::string id = link->peer_id();
    if (was_handshaking) {
      if (!reason.empty()) {
        stats_.handshake_failures++;
        log_refusal(link->remote_address(), reason);
      }
    } else if (link->closed_for_bad_frame()) {
      stats_.frame_errors++;
    }
    if (!id.empty()) {
      if (auto w = wanted_.find(id); w != wanted_.end()) {
        Want& want = w->second;
        if (want.dialing) {
          want.dialing = false;
          want.next_dial_ms = steady_ms() + want.backoff_ms;
          want.backoff_ms = std::min(want.backoff_ms * 2, kMaxBackoffMs);
        }
        if (!reason.empty()) want.last_error = reason;
      }
      auto r = ready_.find(id);
      if (r != ready_.end() && r->second == link) {
        ready_.erase(r);
        if (!reason.empty())
          spdlog::info("control: link to {} ({}) closed: {}", link->peer_name(), id.substr(0, 8), reason);
        publish();
        if (callbacks_.on_peer_lost) callbacks_.on_peer_lost(id, reason);
      }
    }
  };
  return cb;
}

void ControlPlane::log_refusal(const std::string& remote, const std::string& reason) {
  // A flood of bad connections must not flood the log: at most 10 lines per 10 s.
  int64_t now = steady_ms();
  if (now - refusal_window_start_ms_ >= 10'000) {
    if (refusals_suppressed_ > 0) {
      spdlog::warn("control: {} more connections refused in the last 10 s (not logged one by one)",
                   refusals_suppressed_);
    }
    refusal_window_start_ms_ = now;
    refusals_in_window_ = 0;
    refusals_suppressed_ = 0;
  }
  if (++refusals_in_window_ <= 10) {
    spdlog::warn("control: connection {} refused: {}", remote, reason);
  } else {
    refusals_suppressed_++;
  }
}

void ControlPlane::want(const std::string& peer_id, const std::string& host, uint16_t port) {
  if (stopped_) return;
  auto [it, inserted] = wanted_.try_emplace(peer_id);
  bool moved = it->second.host != host || it->second.port != port;
  it->second.host = host;
  it->second.port = port;
  if (inserted) publish();
  if (self_.node_id < peer_id && !ready_.count(peer_id) && !it->second.dialing &&
      (inserted || moved || steady_ms() >= it->second.next_dial_ms)) {
    dial(peer_id);
  }
}

void ControlPlane::forget(const std::string& peer_id) {
  wanted_.erase(peer_id);
  if (auto r = ready_.find(peer_id); r != ready_.end()) {
    auto link = r->second;
    ready_.erase(r);
    link->close("");
  }
  publish();
}

void ControlPlane::dial(const std::string& peer_id) {
  Want& want = wanted_[peer_id];
  want.dialing = true;
  boost::system::error_code ec;
  auto address = asio::ip::make_address_v4(want.host, ec);
  if (ec) {
    want.dialing = false;
    want.last_error = "bad address " + want.host;
    return;
  }
  auto socket = std::make_shared<tcp::socket>(io_);
  auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(3000));
  timer->async_wait([socket](const boost::system::error_code& e) {
    if (!e) socket->close();  // connect took too long: a silent host
  });
  socket->async_connect(tcp::endpoint(address, want.port), [this, socket, timer,
                                                            peer_id](const boost::system::error_code& e) {
    timer->cancel();
    auto w = wanted_.find(peer_id);
    if (stopped_ || w == wanted_.end()) return;
    if (e) {
      w->second.dialing = false;
      w->second.last_error = "connect to " + w->second.host + ":" + std::to_string(w->second.port) + ": " + e.message();
      w->second.next_dial_ms = steady_ms() + w->second.backoff_ms;
      w->second.backoff_ms = std::min(w->second.backoff_ms * 2, kMaxBackoffMs);
      return;
    }
    auto link = std::make_shared<ControlLink>(std::move(*socket), self_, peer_id, link_callbacks());
    handshaking_.insert(link);
    link->start();
  });
}

void ControlPlane::tick() {
  if (stopped_) return;
  for (auto& [id, link] : ready_) link->ping();
  for (auto& [id, want] : wanted_) {
    if (self_.node_id < id && !ready_.count(id) && !want.dialing && steady_ms() >= want.next_dial_ms) dial(id);
  }
  publish();
}

void ControlPlane::send(const std::string& peer_id, const nlohmann::json& message) {
  if (auto r = ready_.find(peer_id); r != ready_.end()) r->second->send(message);
}

void ControlPlane::broadcast(const nlohmann::json& message) {
  for (auto& [id, link] : ready_) link->send(message);
}

void ControlPlane::stop() {
  if (stopped_) return;
  stopped_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
  auto ready = std::move(ready_);
  auto handshaking = std::move(handshaking_);
  ready_.clear();
  handshaking_.clear();
  wanted_.clear();
  for (auto& [id, link] : ready) link->send_and_close({{"type", "goodbye"}});
  for (const auto& link : handshaking) link->close("");
  publish();
}

std::vector<LinkInfo> ControlPlane::links() const {
  std::lock_guard lock(snapshot_mu_);
  return snapshot_;
}

void ControlPlane::publish() {
  std::vector<LinkInfo> out;
  for (const auto& [id, want] : wanted_) {
    LinkInfo info;
    info.peer_id = id;
    info.address = want.host + ":" + std::to_string(want.port);
    info.last_error = want.last_error;
    if (auto r = ready_.find(id); r != ready_.end()) {
      info.state = "up";
      info.peer_name = r->second->peer_name();
      info.rtt_us = r->second->rtt_us();
    } else {
      info.state = want.dialing || self_.node_id > id ? "connecting" : "down";
    }
    out.push_back(std::move(info));
  }
  for (const auto& [id, link] : ready_) {
    if (wanted_.count(id)) continue;
    LinkInfo info;
    info.peer_id = id;
    info.peer_name = link->peer_name();
    info.address = link->remote_address();
    info.state = "up";
    info.rtt_us = link->rtt_us();
    out.push_back(std::move(info));
  }
  std::lock_guard lock(snapshot_mu_);
  snapshot_ = std::move(out);
}

}  // namespace clusterd
