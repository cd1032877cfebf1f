#include "clusterd/transport/control_link.h"

#include <spdlog/spdlog.h>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>

#include "clusterd/common/crypto.h"

namespace clusterd {

namespace asio = boost::asio;

static int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

ControlLink::ControlLink(asio::ip::tcp::socket socket, const ControlIdentity& self, std::string expected_peer_id,
                         Callbacks callbacks)
    : socket_(std::move(socket)),
      self_(self),
      expected_peer_id_(std::move(expected_peer_id)),
      callbacks_(std::move(callbacks)),
      handshake_timer_(socket_.get_executor()) {
  boost::system::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  remote_ = ec ? "unknown" : ep.address().to_string() + ":" + std::to_string(ep.port());
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  own_hello_.cluster_id = self_.cluster_id;
  own_hello_.node_id = self_.node_id;
  own_hello_.name = self_.name;
  own_hello_.nonce = to_hex(random_bytes(32));
}

void ControlLink::start() {
  auto self = shared_from_this();
  handshake_timer_.expires_after(std::chrono::milliseconds(self_.handshake_timeout_ms));
  handshake_timer_.async_wait([self](const boost::system::error_code& ec) {
    if (!ec && self->state_ == State::kHandshake) self->close("handshake did not finish in time");
  });
  send(hello_message(own_hello_));
  read_header();
}

void ControlLink::send(const nlohmann::json& message) {
  if (state_ == State::kClosed) return;
  out_.push_back(encode_control_frame(message));
  if (out_.size() == 1) write_next();
}

void ControlLink::write_next() {
  auto self = shared_from_this();
  asio::async_write(socket_, asio::buffer(out_.front()), [self](const boost::system::error_code& ec, size_t) {
    if (self->state_ == State::kClosed) return;
    if (ec) return self->close("write failed: " + ec.message());
    self->out_.pop_front();
    if (!self->out_.empty())
      self->write_next();
    else if (self->close_when_flushed_)
      self->close("");
  });
}

void ControlLink::close(const std::string& reason) {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  handshake_timer_.cancel();
  boost::system::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  out_.clear();
  if (callbacks_.on_closed) callbacks_.on_closed(shared_from_this(), reason);
}

void ControlLink::send_and_close(const nlohmann::json& message) {
  if (state_ == State::kClosed) return;
  close_when_flushed_ = true;
  send(message);
}

void ControlLink::ping() {
  if (state_ == State::kReady) send({{"type", "ping"}, {"t_us", now_us()}});
}

void ControlLink::read_header() {
  auto self = shared_from_this();
  asio::async_read(socket_, asio::buffer(header_), [self](const boost::system::error_code& ec, size_t) {
    if (self->state_ == State::kClosed) return;
    if (ec == asio::error::eof) return self->close("peer closed the connection");
    if (ec) return self->close("read failed: " + ec.message());
    auto length = decode_control_frame_length(std::span<const uint8_t, 4>(self->header_), self->self_.max_frame_bytes);
    if (!length.is_ok()) {
      self->bad_frame_ = true;
      return self->close(length.status().message());
    }
    self->read_body(*length);
  });
}

void ControlLink::read_body(uint32_t length) {
  auto self = shared_from_this();
  body_.resize(length);
  asio::async_read(socket_, asio::buffer(body_), [self](const boost::system::error_code& ec, size_t) {
    if (self->state_ == State::kClosed) return;
    if (ec) return self->close("read failed in a frame body: " + ec.message());
    auto message = decode_control_message(self->body_);
    if (!message.is_ok()) {
      self->bad_frame_ = true;
      return self->close(message.status().message());
    }
    self->handle(*message);
    if (self->state_ != State::kClosed) self->read_header();
  });
}

void ControlLink::handle(const nlohmann::json& m) {
  const std::string type = m["type"].get<std::string>();
  if (type == "error") {
    auto it = m.find("message");
    return close("peer refused: " + (it != m.end() && it->is_string() ? it->get<std::string>() : std::string("?")));
  }
  if (state_ == State::kHandshake) {
    if (!peer_hello_seen_) {
      auto hello = parse_hello(m, self_.cluster_id);
      if (!hello.is_ok()) {
        send({{"type", "error"}, {"message", hello.status().message()}});
        return close("handshake refused: " + hello.status().message());
      }
      if (!expected_peer_id_.empty() && hello->node_id != expected_peer_id_) {
        return close("dialed node " + expected_peer_id_ + " but " + hello->node_id + " answered");
      }
      if (hello->node_id == self_.node_id) return close("connected to itself");
      peer_ = *hello;
      peer_hello_seen_ = true;
      send({{"type", "auth"}, {"proof", auth_proof(self_.key, own_hello_, peer_)}});
      return;
    }
    auto proof = m.find("proof");
    if (type != "auth" || proof == m.end() || !proof->is_string() ||
        !verify_auth_proof(self_.key, own_hello_, peer_, proof->get<std::string>())) {
      send({{"type", "error"}, {"message", "authentication failed: the cluster keys differ"}});
      return close("authentication failed: peer " + peer_.name + " does not hold this cluster's key");
    }
    state_ = State::kReady;
    handshake_timer_.cancel();
    if (callbacks_.on_ready) callbacks_.on_ready(shared_from_this());
    return;
  }
  if (type == "ping") {
    auto t = m.find("t_us");
    if (t != m.end() && t->is_number_integer()) send({{"type", "pong"}, {"t_us", *t}});
  } else if (type == "pong") {
    auto t = m.find("t_us");
    if (t != m.end() && t->is_number_integer()) {
      int64_t rtt = now_us() - t->get<int64_t>();
      if (rtt >= 0 && rtt < 60'000'000) rtt_us_ = rtt;
    }
  }
  if (callbacks_.on_message) callbacks_.on_message(shared_from_this(), m);
}

}  // namespace clusterd
