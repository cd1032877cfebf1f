// One authenticated TCP control connection to a peer (Boost.Asio, single io thread).
// The link says hello, proves it holds the cluster key, checks the peer's proof, and
// only then passes messages up. Oversize or malformed frames close it with a reason.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "clusterd/transport/control_frame.h"

namespace clusterd {

struct ControlIdentity {
  std::string key;
  std::string cluster_id;
  std::string node_id;
  std::string name;
  uint32_t max_frame_bytes = kMaxControlFrameBytes;
  int handshake_timeout_ms = 5000;
};

class ControlLink : public std::enable_shared_from_this<ControlLink> {
 public:
  enum class State { kHandshake, kReady, kClosed };

  struct Callbacks {
    std::function<void(const std::shared_ptr<ControlLink>&)> on_ready;
    std::function<void(const std::shared_ptr<ControlLink>&, const nlohmann::json&)> on_message;
    // `reason` is empty for a close this side asked for.
    std::function<void(const std::shared_ptr<ControlLink>&, const std::string& reason)> on_closed;
  };

  // `expected_peer_id` (dialer side) must match the peer's hello; empty accepts any.
  ControlLink(boost::asio::ip::tcp::socket socket, const ControlIdentity& self, std::string expected_peer_id,
              Callbacks callbacks);

  void start();
  void send(const nlohmann::json& message);
  void close(const std::string& reason);
  // Queues `message` and closes the link once everything queued is written.
  void send_and_close(const nlohmann::json& message);

  State state() const { return state_; }
  const std::string& peer_id() const { return peer_.node_id; }
  const std::string& peer_name() const { return peer_.name; }
  const std::string& remote_address() const { return remote_; }
  // Latest measured round trip, microseconds; -1 before the first pong.
  int64_t rtt_us() const { return rtt_us_; }
  // True when the link was closed for an oversize, empty or malformed frame.
  bool closed_for_bad_frame() const { return bad_frame_; }
  // Sends a ping carrying the local send time; the pong updates rtt_us().
  void ping();

 private:
  void read_header();
  void read_body(uint32_t length);
  void handle(const nlohmann::json& message);
  void write_next();

  boost::asio::ip::tcp::socket socket_;
  const ControlIdentity self_;
  std::string expected_peer_id_;
  Callbacks callbacks_;
  boost::asio::steady_timer handshake_timer_;
  Hello own_hello_;
  Hello peer_;
  bool peer_hello_seen_ = false;
  State state_ = State::kHandshake;
  std::string remote_;
  uint8_t header_[4] = {};
  std::string body_;
  std::deque<std::string> out_;
  int64_t rtt_us_ = -1;
  bool close_when_flushed_ = false;
  bool bad_frame_ = false;
};

}  // namespace clusterd
