// Groups of ranks on loopback TCP, one thread per rank: the collectives' results, their
// bit-identity across ranks, deadlines, dead peers, stale epochs and wrong keys.
#include "clusterd/collective/group.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <random>
#include <thread>

namespace clusterd {
namespace {

const std::string kKey = "collective-test-key-0123456789";

struct Cluster {
  std::vector<std::unique_ptr<DataListener>> listeners;
  std::vector<GroupMember> members;
};

Cluster make_cluster(int n) {
  Cluster c;
  for (int r = 0; r < n; ++r) {
    auto l = DataListener::bind(0);
    EXPECT_TRUE(l.is_ok());
    c.members.push_back({"127.0.0.1", (*l)->port(), "r" + std::to_string(r)});
    c.listeners.push_back(std::move(*l));
  }
  return c;
}

// Forms an n-rank group and runs body(rank, group) on each rank's thread.
void run_group(int n, const std::function<void(int, Group&)>& body, GroupOptions base = {}) {
  Cluster c = make_cluster(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      GroupOptions o = base;
      o.key = base.key.empty() ? kKey : base.key;
      o.rank = r;
      o.members = c.members;
      auto g = Group::form(o, *c.listeners[r]);
      ASSERT_TRUE(g.is_ok()) << g.status().to_string();
      body(r, **g);
    });
  }
  for (auto& t : threads) t.join();
}

std::vector<float> rank_data(int rank, size_t n) {
  std::mt19937 rng(100 + rank);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

class AllReduce : public ::testing::TestWithParam<std::tuple<int, size_t>> {};

TEST_P(AllReduce, EveryRankHoldsTheRankOrderSumBitForBit) {
  auto [n, count] = GetParam();
  std::vector<float> expected(count, 0.0f);
  for (int r = 0; r < n; ++r) {
    auto data = rank_data(r, count);
    for (size_t i = 0; i < count; ++i) expected[i] += data[i];
  }
  std::vector<std::vector<float>> results(n);
  run_group(n, [&](int r, Group& g) {
    auto data = rank_data(r, count);
    ASSERT_TRUE(g.all_reduce_sum(data).is_ok());
    ASSERT_TRUE(g.all_reduce_sum(data).is_ok());  // twice: the group stays in step
    results[r] = data;
  });
  for (int r = 0; r < n; ++r) {
    ASSERT_EQ(results[r].size(), count);
    EXPECT_EQ(std::memcmp(results[r].data(), results[0].data(), count * sizeof(float)), 0) << "rank " << r;
  }
  // The second all-reduce summed n copies of the first result.
  for (size_t i = 0; i < count; i += 97) EXPECT_NEAR(results[0][i], expected[i] * n, 1e-3) << i;
}

// Small buffers go by mesh, large ones by reduce-scatter + all-gather (over 64 KiB).
INSTANTIATE_TEST_SUITE_P(Sizes, AllReduce,
                         ::testing::Combine(::testing::Values(2, 3, 4),
                                            ::testing::Values(size_t{1}, size_t{2048}, size_t{100003})));

TEST(Collectives, AllGatherConcatenatesInRankOrder) {
  run_group(3, [](int r, Group& g) {
    std::vector<float> mine = {float(r), float(r) + 0.5f};
    std::vector<float> out(6);
    ASSERT_TRUE(g.all_gather(mine, out).is_ok());
    EXPECT_EQ(out, (std::vector<float>{0, 0.5f, 1, 1.5f, 2, 2.5f}));
  });
}

TEST(Collectives, BroadcastCopiesTheRootsData) {
  run_group(4, [](int r, Group& g) {
    std::vector<float> data(1000, float(r));
    ASSERT_TRUE(g.broadcast(data, 2).is_ok());
    EXPECT_EQ(data, std::vector<float>(1000, 2.0f));
    std::vector<float> small = {float(r)};
    ASSERT_TRUE(g.all_reduce_sum(small).is_ok());  // still in step after a broadcast
    EXPECT_EQ(small[0], 0 + 1 + 2 + 3);
  });
}

TEST(Collectives, ASilentPeerIsADeadlineErrorNamingItAndBreaksTheGroup) {
  GroupOptions o;
  o.deadline_ms = 300;
  run_group(
      3,
      [](int r, Group& g) {
        if (r == 2) {
          std::this_thread::sleep_for(std::chrono::milliseconds(800));  // never joins the operation
          return;
        }
        std::vector<float> data(16, 1.0f);
        auto t0 = std::chrono::steady_clock::now();
        Status s = g.all_reduce_sum(data);
        auto waited = std::chrono::steady_clock::now() - t0;
        EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.to_string();
        EXPECT_NE(s.message().find("rank 2 (r2)"), std::string::npos) << s.message();
        EXPECT_LT(waited, std::chrono::milliseconds(700));
        EXPECT_TRUE(g.broken());
        EXPECT_FALSE(g.all_reduce_sum(data).is_ok());
      },
      o);
}

TEST(Collectives, APeerThatClosesItsLinksIsAnErrorAtOnce) {
  GroupOptions o;
  o.deadline_ms = 5000;
  run_group(
      2,
      [](int r, Group& g) {
        if (r == 1) {
          g.close();
          return;
        }
        std::vector<float> data(16, 1.0f);
        auto t0 = std::chrono::steady_clock::now();
        Status s = g.all_reduce_sum(data);
        EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
        EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2000));
      },
      o);
}

TEST(Collectives, ARankWithAnotherKeyCannotJoin) {
  Cluster c = make_cluster(2);
  std::thread other([&] {
    GroupOptions o;
    o.key = "a-different-key-entirely-000000";
    o.rank = 1;
    o.members = c.members;
    o.connect_timeout_ms = 1000;
    auto g = Group::form(o, *c.listeners[1]);
    EXPECT_FALSE(g.is_ok());
    EXPECT_NE(g.status().message().find("key"), std::string::npos) << g.status().to_string();
  });
  GroupOptions o;
  o.key = kKey;
  o.rank = 0;
  o.members = c.members;
  o.connect_timeout_ms = 1000;
  auto g = Group::form(o, *c.listeners[0]);
  EXPECT_FALSE(g.is_ok()) << "rank 0 must not accept a rank that cannot prove the key";
  other.join();
}

TEST(Collectives, AGroupOfAnOlderEpochIsRefused) {
  Cluster c = make_cluster(2);
  std::thread old([&] {
    GroupOptions o;
    o.key = kKey;
    o.epoch = 6;
    o.rank = 1;
    o.members = c.members;
    o.connect_timeout_ms = 800;
    EXPECT_FALSE(Group::form(o, *c.listeners[1]).is_ok());
  });
  GroupOptions o;
  o.key = kKey;
  o.epoch = 7;
  o.rank = 0;
  o.members = c.members;
  o.connect_timeout_ms = 800;
  EXPECT_FALSE(Group::form(o, *c.listeners[0]).is_ok());
  old.join();
}

TEST(Collectives, AFailingCheckEndsFormingAtOnceWithItsError) {
  // Rank 0 waits for rank 1 to accept; rank 1 is still loading (it accepts nothing).
  Cluster c = make_cluster(2);
  std::atomic<bool> rank1_failed{false};
  GroupOptions o;
  o.key = kKey;
  o.members = c.members;
  o.connect_timeout_ms = 60000;
  o.check = [&] { return rank1_failed ? unavailable("r1: cannot load its part") : Status::ok(); };
  for (int rank : {0, 1}) {
    o.rank = rank;
    rank1_failed = false;
    std::thread reporter([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      rank1_failed = true;
    });
    const auto t0 = std::chrono::steady_clock::now();
    auto g = Group::form(o, *c.listeners[rank]);  // rank 1 dials rank 0, whose backlog holds it
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    reporter.join();
    ASSERT_FALSE(g.is_ok());
    EXPECT_EQ(g.status().message(), "r1: cannot load its part");
    EXPECT_LT(ms, 1000) << "rank " << rank;
  }
}

TEST(DataFrames, GarbageHeadersAreRefusedWithAReason) {
  uint8_t h[kDataFrameHeaderBytes] = {};
  std::memcpy(h, "XXXX", 4);
  auto r = decode_data_frame_header(std::span<const uint8_t, kDataFrameHeaderBytes>(h, sizeof h));
  EXPECT_FALSE(r.is_ok());
  encode_data_frame_header({DataOp::kAllReduce, 0, 0, 16, 3, 9}, h);
  auto ok = decode_data_frame_header(std::span<const uint8_t, kDataFrameHeaderBytes>(h, sizeof h));
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(ok->epoch, 3u);
  EXPECT_EQ(ok->sequence, 9u);
  h[8] = 0xff, h[9] = 0xff, h[10] = 0xff, h[11] = 0xff;
  auto big = decode_data_frame_header(std::span<const uint8_t, kDataFrameHeaderBytes>(h, sizeof h));
  EXPECT_FALSE(big.is_ok());
  EXPECT_NE(big.status().message().find("exceeds"), std::string::npos);
}

}  // namespace
}  // namespace clusterd

namespace clusterd {
namespace {

// Sends `bytes` to 127.0.0.1:port from a plain socket and closes it.
void send_raw(uint16_t port, const std::string& bytes) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  }
  ::close(fd);
}

TEST(Collectives, GarbageAndOversizedFramesOnTheDataPortDoNotStopAGroupForming) {
  Cluster c = make_cluster(2);
  // Strangers get to the data port first: random bytes, a header announcing 4 GiB, a
  // hello of another epoch.
  send_raw(c.members[0].port, std::string(100, '\x7f'));
  uint8_t h[kDataFrameHeaderBytes];
  encode_data_frame_header({DataOp::kHello, 0, 0, 0, 1, 0}, h);
  std::string oversized(reinterpret_cast<char*>(h), sizeof h);
  oversized[8] = oversized[9] = oversized[10] = oversized[11] = '\xff';
  send_raw(c.members[0].port, oversized);
  encode_data_frame_header({DataOp::kHello, 0, 0, 6, 999, 0}, h);
  send_raw(c.members[0].port, std::string(reinterpret_cast<char*>(h), sizeof h) + "1|abcd");
  std::vector<float> results(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      GroupOptions o;
      o.key = kKey;
      o.rank = r;
      o.members = c.members;
      o.connect_timeout_ms = 5000;
      auto g = Group::form(o, *c.listeners[r]);
      ASSERT_TRUE(g.is_ok()) << g.status().to_string();
      std::vector<float> data = {float(r + 1)};
      ASSERT_TRUE((*g)->all_reduce_sum(data).is_ok());
      results[r] = data[0];
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(results, (std::vector<float>{3, 3}));
}

}  // namespace
}  // namespace clusterd
