// parallel_for runs every index exactly once, in pieces on grain boundaries, and a
// thread that falls behind has its range finished by the others.
#include "clusterd/engine/thread_pool.h"

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace clusterd {
namespace {

struct Piece {
  int thread;
  int64_t begin, end;
};

std::vector<Piece> run(ThreadPool& pool, int64_t n, int64_t grain, int slow_thread = -1) {
  std::mutex mu;
  std::vector<Piece> pieces;
  pool.parallel_for(n, grain, [&](int thread, int64_t begin, int64_t end) {
    if (thread == slow_thread) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::lock_guard lock(mu);
    pieces.push_back({thread, begin, end});
  });
  return pieces;
}

void expect_exact_cover(const std::vector<Piece>& pieces, int64_t n, int64_t grain) {
  std::vector<int> hits(n, 0);
  for (const Piece& p : pieces) {
    ASSERT_LT(p.begin, p.end);
    ASSERT_EQ(p.begin % grain, 0) << "piece [" << p.begin << ", " << p.end << ")";
    ASSERT_TRUE(p.end % grain == 0 || p.end == n) << "piece [" << p.begin << ", " << p.end << ")";
    for (int64_t i = p.begin; i < p.end; ++i) ++hits[i];
  }
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i], 1) << "index " << i;
}

TEST(ThreadPool, EveryIndexOnceOnGrainBoundaries) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 7, 32, 33, 1000, 4096}) {
      for (int64_t grain : {1, 4, 32}) expect_exact_cover(run(pool, n, grain), n, grain);
    }
  }
}

TEST(ThreadPool, OthersFinishASlowThreadsRange) {
  ThreadPool pool(2);
  // The worker sleeps in every piece it runs; the calling thread takes over the back
  // of its range, so it runs more than its own half.
  const int64_t n = 64;
  const auto pieces = run(pool, n, 1, /*slow_thread=*/1);
  expect_exact_cover(pieces, n, 1);
  int64_t by_caller = 0;
  for (const Piece& p : pieces) {
    if (p.thread == 0) by_caller += p.end - p.begin;
  }
  EXPECT_GT(by_caller, n / 2);
}

TEST(ThreadPool, ManyLoopsInARow) {
  ThreadPool pool(3);
  std::vector<int64_t> sums(3);
  int64_t total = 0;
  for (int loop = 0; loop < 2000; ++loop) {
    std::fill(sums.begin(), sums.end(), 0);
    pool.parallel_for(257, 16, [&](int thread, int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) sums[thread] += i;
    });
    total += sums[0] + sums[1] + sums[2];
  }
  EXPECT_EQ(total, 2000 * (256 * 257 / 2));
}

}  // namespace
}  // namespace clusterd
