// Peer liveness on a manual clock: join, refresh, replay, restart, suspect, gone, forget.
#include "clusterd/discovery/peer_table.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace clusterd {
namespace {

constexpr const char* kNode = "123e4567-e89b-42d3-a456-426614174000";
constexpr const char* kOtherNode = "223e4567-e89b-42d3-a456-426614174000";
constexpr const char* kAddress = "10.0.0.7";
constexpr uint16_t kDiscoveryPort = 8888;

Beacon beacon(uint64_t incarnation, uint64_t sequence, BeaconKind kind = BeaconKind::kAnnounce,
              const std::string& node = kNode) {
  Beacon b;
  b.kind = kind;
  b.cluster_id = "0011223344556677";
  b.node_id = node;
  b.incarnation = incarnation;
  b.sequence = sequence;
  b.control_port = 8001;
  b.api_port = 8000;
  b.name = "gpu-7";
  b.api_host = "10.0.0.7";
  b.resources.cores = 32;
  return b;
}

class PeerTableTest : public ::testing::Test {
 protected:
  PeerTableOptions options() const { return {}; }  // suspect 2000, expire 3500, forget 300000

  PeerEvent observe(const Beacon& b) { return table_.observe_beacon(b, kAddress, kDiscoveryPort, reject_); }

  PeerStatus status(const std::string& node = kNode) const {
    auto p = table_.find(node);
    EXPECT_TRUE(p.has_value()) << node << " is not in the table";
    return p ? p->status : PeerStatus::kGone;
  }

  ManualClock clock_;
  PeerTable table_{clock_, PeerTableOptions{}};
  BeaconReject reject_ = BeaconReject::kNone;
};

TEST_F(PeerTableTest, FirstBeaconJoinsAnAlivePeerWithItsDetails) {
  EXPECT_EQ(observe(beacon(5, 1)), PeerEvent::kJoined);
  EXPECT_EQ(reject_, BeaconReject::kNone);
  auto p = table_.find(kNode);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->status, PeerStatus::kAlive);
  EXPECT_EQ(p->name, "gpu-7");
  EXPECT_EQ(p->address, kAddress);
  EXPECT_EQ(p->discovery_port, kDiscoveryPort);
  EXPECT_EQ(p->incarnation, 5u);
  EXPECT_EQ(p->last_sequence, 1u);
  EXPECT_EQ(p->control_port, 8001);
  EXPECT_EQ(p->resources.cores, 32);
  EXPECT_EQ(p->first_seen_ms, clock_.now_ms());
  EXPECT_TRUE(p->inventory.is_null());
}

TEST_F(PeerTableTest, NextSequenceRefreshes) {
  observe(beacon(5, 1));
  clock_.advance(1000);
  EXPECT_EQ(observe(beacon(5, 2)), PeerEvent::kRefreshed);
  EXPECT_EQ(table_.find(kNode)->last_seen_ms, clock_.now_ms());
}

TEST_F(PeerTableTest, SameSequenceAgainIsADuplicate) {
  observe(beacon(5, 1));
  EXPECT_EQ(observe(beacon(5, 1)), PeerEvent::kDuplicate);
  EXPECT_EQ(reject_, BeaconReject::kNone);
}

TEST_F(PeerTableTest, LowerSequenceIsRejectedAsAReplay) {
  observe(beacon(5, 10));
  EXPECT_EQ(observe(beacon(5, 9)), PeerEvent::kRejected);
  EXPECT_EQ(reject_, BeaconReject::kReplay);
  EXPECT_EQ(table_.find(kNode)->last_sequence, 10u);
}

TEST_F(PeerTableTest, ReplayedBeaconsDoNotKeepASilentNodeAlive) {
  std::vector<Beacon> captured;
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    captured.push_back(beacon(5, seq));
    observe(captured.back());
  }
  // The node goes silent; an attacker keeps replaying what it captured.
  std::vector<std::string> gone;
  for (int step = 0; step < 10 && gone.empty(); ++step) {
    clock_.advance(500);
    for (const Beacon& b : captured) {
      PeerEvent e = observe(b);
      EXPECT_TRUE(e == PeerEvent::kRejected || e == PeerEvent::kDuplicate);
    }
    gone = table_.expire();
  }
  EXPECT_EQ(gone, std::vector<std::string>{kNode});
  EXPECT_EQ(status(), PeerStatus::kGone);
}

TEST_F(PeerTableTest, ReplayedBeaconsDoNotReviveAGoneNode) {
  observe(beacon(5, 1));
  observe(beacon(5, 2));
  clock_.advance(3500);
  ASSERT_EQ(table_.expire(), std::vector<std::string>{kNode});
  EXPECT_EQ(observe(beacon(5, 1)), PeerEvent::kRejected);
  EXPECT_EQ(observe(beacon(5, 2)), PeerEvent::kDuplicate);
  EXPECT_EQ(status(), PeerStatus::kGone);
}

TEST_F(PeerTableTest, OlderIncarnationIsRejectedAsStale) {
  observe(beacon(5, 1));
  EXPECT_EQ(observe(beacon(4, 100)), PeerEvent::kRejected);
  EXPECT_EQ(reject_, BeaconReject::kStaleIncarnation);
  EXPECT_EQ(table_.find(kNode)->incarnation, 5u);
}

TEST_F(PeerTableTest, NewerIncarnationIsARestartEvenWithALowerSequence) {
  observe(beacon(5, 100));
  EXPECT_EQ(observe(beacon(6, 1)), PeerEvent::kRestarted);
  auto p = table_.find(kNode);
  EXPECT_EQ(p->incarnation, 6u);
  EXPECT_EQ(p->last_sequence, 1u);
  EXPECT_EQ(p->status, PeerStatus::kAlive);
}

TEST_F(PeerTableTest, RestartDropsTheOldIncarnationsInventory) {
  observe(beacon(5, 1));
  table_.set_inventory(kNode, {{"gpus", 8}});
  observe(beacon(5, 2));
  EXPECT_EQ(table_.find(kNode)->inventory["gpus"], 8);
  observe(beacon(6, 1));
  EXPECT_TRUE(table_.find(kNode)->inventory.is_null());
}

TEST_F(PeerTableTest, SilentPeerBecomesSuspectAfterSuspectAfterMs) {
  observe(beacon(5, 1));
  clock_.advance(options().suspect_after_ms - 1);
  table_.expire();
  EXPECT_EQ(status(), PeerStatus::kAlive);
  clock_.advance(1);
  EXPECT_TRUE(table_.expire().empty());
  EXPECT_EQ(status(), PeerStatus::kSuspect);
}

TEST_F(PeerTableTest, SilentPeerIsGoneAfterExpireAfterMsAndReportedExactlyOnce) {
  observe(beacon(5, 1));
  clock_.advance(options().expire_after_ms - 1);
  EXPECT_TRUE(table_.expire().empty());
  EXPECT_NE(status(), PeerStatus::kGone);
  clock_.advance(1);
  EXPECT_EQ(table_.expire(), std::vector<std::string>{kNode});
  EXPECT_EQ(status(), PeerStatus::kGone);
  EXPECT_TRUE(table_.expire().empty());
  clock_.advance(10'000);
  EXPECT_TRUE(table_.expire().empty());
}

TEST_F(PeerTableTest, GonePeerIsForgottenAfterForgetAfterMs) {
  observe(beacon(5, 1));
  clock_.advance(options().expire_after_ms);
  ASSERT_EQ(table_.expire().size(), 1u);
  clock_.advance(options().forget_after_ms - 1);
  table_.expire();
  EXPECT_TRUE(table_.find(kNode).has_value());
  clock_.advance(1);
  EXPECT_TRUE(table_.expire().empty());
  EXPECT_FALSE(table_.find(kNode).has_value());
  EXPECT_TRUE(table_.snapshot().empty());
}

TEST_F(PeerTableTest, OnlyTheSilentPeerExpires) {
  observe(beacon(5, 1, BeaconKind::kAnnounce, kNode));
  observe(beacon(7, 1, BeaconKind::kAnnounce, kOtherNode));
  for (uint64_t seq = 2; seq <= 5; ++seq) {
    clock_.advance(1000);
    observe(beacon(7, seq, BeaconKind::kAnnounce, kOtherNode));
  }
  EXPECT_EQ(table_.expire(), std::vector<std::string>{kNode});
  EXPECT_EQ(status(kOtherNode), PeerStatus::kAlive);
}

TEST_F(PeerTableTest, GoodbyeMakesThePeerGoneAtOnce) {
  observe(beacon(5, 1));
  EXPECT_EQ(observe(beacon(5, 2, BeaconKind::kGoodbye)), PeerEvent::kLeft);
  EXPECT_EQ(status(), PeerStatus::kGone);
  EXPECT_EQ(table_.find(kNode)->gone_since_ms, clock_.now_ms());
  EXPECT_TRUE(table_.expire().empty());  // already reported by the goodbye
}

TEST_F(PeerTableTest, GoodbyeFromAnUnknownNodeLeavesNoEntry) {
  EXPECT_EQ(observe(beacon(5, 1, BeaconKind::kGoodbye)), PeerEvent::kLeft);
  EXPECT_FALSE(table_.find(kNode).has_value());
}

TEST_F(PeerTableTest, TrafficKeepsAnAlivePeerAlive) {
  observe(beacon(5, 1));
  for (int i = 0; i < 10; ++i) {
    clock_.advance(1000);
    table_.observe_traffic(kNode);
    EXPECT_TRUE(table_.expire().empty());
  }
  EXPECT_EQ(status(), PeerStatus::kAlive);
}

TEST_F(PeerTableTest, TrafficBringsASuspectPeerBackToAlive) {
  observe(beacon(5, 1));
  clock_.advance(options().suspect_after_ms);
  table_.expire();
  ASSERT_EQ(status(), PeerStatus::kSuspect);
  table_.observe_traffic(kNode);
  EXPECT_EQ(status(), PeerStatus::kAlive);
}

TEST_F(PeerTableTest, TrafficDoesNotReviveAGonePeer) {
  observe(beacon(5, 1));
  clock_.advance(options().expire_after_ms);
  ASSERT_EQ(table_.expire().size(), 1u);
  table_.observe_traffic(kNode);
  EXPECT_EQ(status(), PeerStatus::kGone);
  EXPECT_TRUE(table_.expire().empty());
}

TEST_F(PeerTableTest, TrafficFromAnUnknownNodeAddsNothing) {
  table_.observe_traffic(kNode);
  EXPECT_TRUE(table_.snapshot().empty());
}

TEST_F(PeerTableTest, GonePeersNewBeaconJoinsItAgain) {
  observe(beacon(5, 1));
  clock_.advance(options().expire_after_ms);
  ASSERT_EQ(table_.expire().size(), 1u);
  EXPECT_EQ(observe(beacon(5, 2)), PeerEvent::kJoined);
  EXPECT_EQ(status(), PeerStatus::kAlive);
  EXPECT_EQ(table_.find(kNode)->gone_since_ms, 0);
}

TEST_F(PeerTableTest, GonePeersNewIncarnationJoinsItAgain) {
  observe(beacon(5, 1));
  observe(beacon(5, 2, BeaconKind::kGoodbye));
  EXPECT_EQ(observe(beacon(6, 1)), PeerEvent::kJoined);
  EXPECT_EQ(status(), PeerStatus::kAlive);
}

TEST_F(PeerTableTest, MarkGoneMakesThePeerGoneWithoutAnExpireReport) {
  observe(beacon(5, 1));
  table_.mark_gone(kNode);
  EXPECT_EQ(status(), PeerStatus::kGone);
  EXPECT_TRUE(table_.expire().empty());
}

TEST_F(PeerTableTest, ForgottenPeerIsAFreshJoinWhenItComesBack) {
  observe(beacon(5, 1));
  clock_.advance(options().expire_after_ms);
  table_.expire();
  clock_.advance(options().forget_after_ms);
  table_.expire();
  ASSERT_FALSE(table_.find(kNode).has_value());
  EXPECT_EQ(observe(beacon(6, 1)), PeerEvent::kJoined);
  EXPECT_EQ(table_.find(kNode)->first_seen_ms, clock_.now_ms());
}

TEST_F(PeerTableTest, SnapshotListsEveryPeer) {
  observe(beacon(5, 1, BeaconKind::kAnnounce, kNode));
  observe(beacon(7, 1, BeaconKind::kAnnounce, kOtherNode));
  auto all = table_.snapshot();
  std::set<std::string> ids;
  for (const auto& p : all) ids.insert(p.node_id);
  EXPECT_EQ(all.size(), 2u);
  EXPECT_EQ(ids, (std::set<std::string>{kNode, kOtherNode}));
}

TEST(PeerStatusName, NamesEveryStatus) {
  EXPECT_STREQ(peer_status_name(PeerStatus::kAlive), "alive");
  EXPECT_STREQ(peer_status_name(PeerStatus::kSuspect), "suspect");
  EXPECT_STREQ(peer_status_name(PeerStatus::kGone), "gone");
}

}  // namespace
}  // namespace clusterd
