// Control links over real loopback TCP: two control planes in one io_context, run in
// the test thread until an expected event or a deadline. No sleeps decide an outcome.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "clusterd/common/crypto.h"
#include "clusterd/transport/control_plane.h"

namespace clusterd {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using nlohmann::json;
using namespace std::chrono_literals;

const std::string kKey = "test-cluster-key-0123456789";
const std::string kOtherKey = "other-cluster-key-9876543210";

// ControlPlane::listen binds the port it is given, so ask the kernel for a free one.
uint16_t free_port() {
  asio::io_context io;
  tcp::acceptor probe(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  uint16_t port = probe.local_endpoint().port();
  probe.close();
  return port;
}

// One node: a control plane and a record of what it reported.
struct Node {
  Node(asio::io_context& io, const std::string& key, const std::string& id, int handshake_timeout_ms = 5000,
       const std::string& claimed_cluster_id = "")
      : port(free_port()) {
    identity.key = key;
    identity.cluster_id = claimed_cluster_id.empty() ? cluster_id_for_key(key) : claimed_cluster_id;
    identity.node_id = id;
    identity.name = "node-" + id.substr(0, 4);
    identity.handshake_timeout_ms = handshake_timeout_ms;
    ControlPlane::Callbacks cb;
    cb.on_peer_ready = [this](const std::string& peer) { ready.push_back(peer); };
    cb.on_peer_message = [this](const std::string& peer, const json& m) { messages.emplace_back(peer, m); };
    cb.on_peer_lost = [this](const std::string& peer, const std::string& reason) { lost.emplace_back(peer, reason); };
    plane = std::make_unique<ControlPlane>(io, identity, port, cb);
    Status s = plane->listen();
    EXPECT_TRUE(s.is_ok()) << s.to_string();
  }

  bool link_up(const std::string& peer) const {
    auto links = plane->links();
    return std::any_of(links.begin(), links.end(),
                       [&](const LinkInfo& l) { return l.peer_id == peer && l.state == "up"; });
  }
  bool any_link_up() const {
    auto links = plane->links();
    return std::any_of(links.begin(), links.end(), [](const LinkInfo& l) { return l.state == "up"; });
  }
  const json* received(const std::string& type) const {
    for (const auto& [peer, m] : messages) {
      if (m["type"] == type) return &m;
    }
    return nullptr;
  }
  bool lost_link_to(const std::string& peer) const {
    return std::any_of(lost.begin(), lost.end(), [&](const auto& l) { return l.first == peer; });
  }

  ControlIdentity identity;
  uint16_t port;
  std::vector<std::string> ready;
  std::vector<std::pair<std::string, json>> messages;
  std::vector<std::pair<std::string, std::string>> lost;
  std::unique_ptr<ControlPlane> plane;  // last: goes first, before the records its callbacks write
};

// A plain TCP client that can send anything and notices when the server hangs up.
struct RawClient {
  explicit RawClient(asio::io_context& io) : socket(io) {}

  boost::system::error_code connect(uint16_t port) {
    boost::system::error_code ec;
    socket.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port), ec);
    if (!ec) watch();
    return ec;
  }
  void send(const std::string& bytes) {
    boost::system::error_code ec;  // the server may already have hung up
    asio::write(socket, asio::buffer(bytes), ec);
  }
  void watch() {
    socket.async_read_some(asio::buffer(buffer), [this](const boost::system::error_code& ec, size_t n) {
      if (ec) {
        closed = true;
        return;
      }
      received.append(buffer.data(), n);
      watch();
    });
  }

  tcp::socket socket;
  std::array<char, 4096> buffer{};
  std::string received;
  bool closed = false;
};

std::string frame_header(uint32_t length) {
  return {static_cast<char>(length >> 24), static_cast<char>(length >> 16), static_cast<char>(length >> 8),
          static_cast<char>(length)};
}

class ControlPlaneTest : public ::testing::Test {
 protected:
  ControlPlaneTest() {
    low_id_ = make_uuid();
    high_id_ = make_uuid();
    if (high_id_ < low_id_) std::swap(low_id_, high_id_);  // the smaller id dials
  }

  // Runs the io loop until `done` or the deadline; true when `done`.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 3000ms) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      if (io_.stopped()) io_.restart();
      io_.run_for(5ms);
    }
    return true;
  }

  // Brings up the link low -> high, as the agent does: both want each other.
  void connect(Node& low, Node& high) {
    low.plane->want(high_id_, "127.0.0.1", high.port);
    high.plane->want(low_id_, "127.0.0.1", low.port);
    ASSERT_TRUE(run_until([&] { return low.link_up(high_id_) && high.link_up(low_id_); }))
        << "the link did not come up";
  }

  asio::io_context io_;  // first: outlives every node and client of a test
  std::string low_id_;
  std::string high_id_;
};

TEST_F(ControlPlaneTest, SameKeyBringsTheLinkUpOnBothSides) {
  Node low(io_, kKey, low_id_), high(io_, kKey, high_id_);
  low.plane->want(high_id_, "127.0.0.1", high.port);
  high.plane->want(low_id_, "127.0.0.1", low.port);

  ASSERT_TRUE(run_until([&] { return low.link_up(high_id_) && high.link_up(low_id_); }));
  EXPECT_EQ(low.ready, std::vector<std::string>{high_id_});
  EXPECT_EQ(high.ready, std::vector<std::string>{low_id_});
  EXPECT_EQ(low.plane->stats().links_established, 1u);
  EXPECT_EQ(high.plane->stats().links_established, 1u);
  EXPECT_EQ(high.plane->stats().handshake_failures, 0u);
}

TEST_F(ControlPlaneTest, AcceptingSideNeedNotWantThePeer) {
  Node low(io_, kKey, low_id_), high(io_, kKey, high_id_);
  low.plane->want(high_id_, "127.0.0.1", high.port);
  ASSERT_TRUE(run_until([&] { return low.link_up(high_id_) && high.link_up(low_id_); }));
  EXPECT_EQ(high.ready, std::vector<std::string>{low_id_});
}

TEST_F(ControlPlaneTest, LinkReportsThePeersName) {
  Node low(io_, kKey, low_id_), high(io_, kKey, high_id_);
  connect(low, high);
  auto links = low.plane->links();
  ASSERT_EQ(links.size(), 1u);
  EXPECT_EQ(links[0].peer_name, high.identity.name);
  EXPECT_EQ(links[0].transport, "tcp");
}

TEST_F(ControlPlaneTest, MessagesArriveInBothDirections) {
  Node low(io_, kKey, low_id_), high(io_, kKey, high_id_);
  connect(low, high);

  low.plane->send(high_id_, {{"type", "work"}, {"n", 42}});
  high.plane->send(low_id_, {{"type", "result"}, {"n", 43}});
  ASSERT_TRUE(run_until([&] { return high.received("work") && low.received("result"); }));
  EXPECT_EQ((*high.received("work"))["n"], 42);
  EXPECT_EQ((*low.received("result"))["n"], 43);
  for (const auto& [peer, m] : high.messages) EXPECT_EQ(peer, low_id_);
}

TEST_F(ControlPlaneTest, BroadcastReachesTheReadyPeer) {
  Node low(io_, kKey, low_id_), high(io_, kKey, high_id_);
  connect(low, high);
  high.plane->broadcast({{"type", "inventory"}, {"gpus", 8}});
  ASSERT_TRUE(run_until([&] { return low.received("inventory") != nullptr; }));
  EXPECT_EQ((*low.received("inventory"))["gpus"], 8);
}

TEST_F(ControlPlaneTest, ReadyLinkMeasuresItsRoundTrip) {
  Node low(io_, kKey, low_id_), high(io_, kKey, high_id_);
  connect(low, high);
  auto rtt = [&] {
    auto links = low.plane->links();
    return links.empty() ? -1 : links[0].rtt_us;
  };
  ASSERT_TRUE(run_until([&] {
    low.plane->tick();  // pings, and publishes the latest round trip
    return rtt() >= 0;
  }));
  EXPECT_LT(rtt(), 1'000'000);  // loopback: well under a second
}

TEST_F(ControlPlaneTest, DifferentKeysNeverBringALinkUp) {
  Node low(io_, kKey, low_id_), high(io_, kOtherKey, high_id_);
  low.plane->want(high_id_, "127.0.0.1", high.port);
  high.plane->want(low_id_, "127.0.0.1", low.port);

  ASSERT_TRUE(run_until(
      [&] { return high.plane->stats().handshake_failures >= 1 && low.plane->stats().handshake_failures >= 1; }));
  EXPECT_EQ(high.plane->stats().handshake_failures, 1u);
  EXPECT_TRUE(low.ready.empty());
  EXPECT_TRUE(high.ready.empty());
  EXPECT_FALSE(low.any_link_up());
  EXPECT_FALSE(high.any_link_up());
  EXPECT_EQ(high.plane->stats().links_established, 0u);
}

TEST_F(ControlPlaneTest, DifferentKeysWithTheSameClusterIdFailTheProof) {
  // Only the proofs can tell these apart: the hellos claim the same cluster.
  Node low(io_, kKey, low_id_);
  Node high(io_, kOtherKey, high_id_, 5000, /*claimed_cluster_id=*/cluster_id_for_key(kKey));

  low.plane->want(high_id_, "127.0.0.1", high.port);
  ASSERT_TRUE(run_until(
      [&] { return high.plane->stats().handshake_failures >= 1 && low.plane->stats().handshake_failures >= 1; }));
  EXPECT_TRUE(low.ready.empty());
  EXPECT_TRUE(high.ready.empty());
  EXPECT_FALSE(low.any_link_up());
  EXPECT_FALSE(high.any_link_up());
}

TEST_F(ControlPlaneTest, DialerRefusesANodeOtherThanTheOneItWanted) {
  Node low(io_, kKey, low_id_), high(io_, kKey, high_id_);
  const std::string wanted = "ffffffff-ffff-4fff-bfff-ffffffffffff";  // above low_id_, so low dials
  ASSERT_LT(low_id_, wanted);
  low.plane->want(wanted, "127.0.0.1", high.port);  // but high_id_ answers there
  ASSERT_TRUE(run_until([&] { return low.plane->stats().handshake_failures >= 1; }));
  EXPECT_TRUE(low.ready.empty());
  EXPECT_FALSE(low.any_link_up());
}

TEST_F(ControlPlaneTest, OversizeFrameHeaderFromARawClientClosesItAndThePlaneKeepsAccepting) {
  Node low(io_, kKey, low_id_), high(io_, kKey, high_id_);
  RawClient attacker(io_);
  ASSERT_FALSE(attacker.connect(high.port));
  attacker.send(frame_header(2u << 20));  // announces 2 MiB

  ASSERT_TRUE(run_until([&] { return attacker.closed; })) << "the server kept the connection";
  EXPECT_EQ(high.plane->stats().handshake_failures, 1u);
  EXPECT_TRUE(high.ready.empty());

  connect(low, high);  // a good peer still gets in
}

TEST_F(ControlPlaneTest, GarbageBytesFromARawClientCloseItAndThePlaneKeepsAccepting) {
  Node low(io_, kKey, low_id_), high(io_, kKey, high_id_);
  RawClient http(io_);
  ASSERT_FALSE(http.connect(high.port));
  http.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  RawClient junk(io_);
  ASSERT_FALSE(junk.connect(high.port));
  junk.send(frame_header(9) + "not json!");
  RawClient random(io_);
  ASSERT_FALSE(random.connect(high.port));
  std::mt19937 rng(7);
  std::string noise(1000, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  random.send(noise);

  ASSERT_TRUE(run_until([&] { return http.closed && junk.closed && random.closed; }));
  EXPECT_EQ(high.plane->stats().handshake_failures, 3u);
  EXPECT_TRUE(high.ready.empty());

  connect(low, high);
}

TEST_F(ControlPlaneTest, ValidJsonThatIsNotAHelloIsRefused) {
  Node high(io_, kKey, high_id_);
  RawClient client(io_);
  ASSERT_FALSE(client.connect(high.port));
  client.send(encode_control_frame({{"type", "work"}, {"n", 1}}));
  ASSERT_TRUE(run_until([&] { return client.closed; }));
  EXPECT_EQ(high.plane->stats().handshake_failures, 1u);
}

TEST_F(ControlPlaneTest, SilentClientIsDroppedAfterTheHandshakeTimeout) {
  Node high(io_, kKey, high_id_, /*handshake_timeout_ms=*/200);
  RawClient idle(io_);
  ASSERT_FALSE(idle.connect(high.port));
  ASSERT_TRUE(run_until([&] { return idle.closed; }, 2000ms));
  EXPECT_EQ(high.plane->stats().handshake_failures, 1u);
  EXPECT_NE(idle.received.find("\"hello\""), std::string::npos);  // it did say hello first
}

TEST_F(ControlPlaneTest, OversizeFrameAfterTheHandshakeClosesTheLinkAndCountsAFrameError) {
  Node low(io_, kKey, low_id_), high(io_, kKey, high_id_);
  connect(low, high);
  low.plane->send(high_id_, {{"type", "blob"}, {"data", std::string(kMaxControlFrameBytes + 1000, 'x')}});

  ASSERT_TRUE(run_until([&] { return high.lost_link_to(low_id_); }));
  EXPECT_EQ(high.plane->stats().frame_errors, 1u);
  EXPECT_NE(high.lost[0].second.find("exceeds"), std::string::npos) << high.lost[0].second;
  EXPECT_FALSE(high.link_up(low_id_));
  EXPECT_FALSE(high.received("blob"));
}

TEST_F(ControlPlaneTest, ForgetClosesTheLinkAndThePeerSeesItLost) {
  Node low(io_, kKey, low_id_), high(io_, kKey, high_id_);
  connect(low, high);
  low.plane->forget(high_id_);
  EXPECT_TRUE(low.plane->links().empty());
  ASSERT_TRUE(run_until([&] { return high.lost_link_to(low_id_); }));
  EXPECT_FALSE(high.link_up(low_id_));
}

TEST_F(ControlPlaneTest, LostLinkIsRedialedByTick) {
  Node low(io_, kKey, low_id_), high(io_, kKey, high_id_);
  connect(low, high);
  high.plane->forget(low_id_);  // the accepting side drops it
  ASSERT_TRUE(run_until([&] { return low.lost_link_to(high_id_); }));
  high.plane->want(low_id_, "127.0.0.1", low.port);
  ASSERT_TRUE(run_until([&] {
    low.plane->tick();
    return low.link_up(high_id_) && high.link_up(low_id_);
  }));
  EXPECT_EQ(low.ready.size(), 2u);
}

TEST_F(ControlPlaneTest, StopSaysGoodbyeAndClosesEveryLink) {
  Node low(io_, kKey, low_id_), high(io_, kKey, high_id_);
  connect(low, high);
  high.plane->stop();

  ASSERT_TRUE(run_until([&] { return low.received("goodbye") != nullptr; })) << "no goodbye arrived";
  EXPECT_TRUE(run_until([&] { return low.lost_link_to(high_id_); }, 1000ms)) << "the stopped node's link stayed open";
  EXPECT_FALSE(high.any_link_up()) << "the stopped node still reports a link up";
}

TEST_F(ControlPlaneTest, StopRefusesNewConnections) {
  Node high(io_, kKey, high_id_);
  high.plane->stop();
  RawClient late(io_);
  EXPECT_TRUE(late.connect(high.port)) << "a stopped plane still accepts connections";
}

TEST_F(ControlPlaneTest, ListenOnAPortInUseNamesThePortAndTheFix) {
  Node high(io_, kKey, high_id_);
  ControlPlane second(io_, high.identity, high.port, {});
  Status s = second.listen();
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find(std::to_string(high.port)), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("--control-port"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace clusterd
