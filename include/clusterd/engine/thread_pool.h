// A fixed pool of worker threads for data-parallel loops (kernels). The calling thread
// takes part, so a pool of 1 runs everything inline. Threads poll for about 50 µs
// before they block, since the next loop usually follows within microseconds.
//
// Each thread owns one contiguous range of a loop and works through it from the front,
// so that it reads one sequential stream; a thread that runs out takes chunks from the
// back of the others' ranges. Two cores do not finish equal halves together (one
// started late, or reads memory more slowly): with fixed halves, decode waited up to
// 15% of each loop for the slower one.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace clusterd {

class ThreadPool {
 public:
  // `n_threads` >= 1, the caller included.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(thread_index, begin, end) over pieces of [0, n) until every index is done
  // once; piece boundaries are multiples of `grain` (or n). A thread may be called
  // several times per loop; the pieces it gets from its own range come in increasing
  // order. Returns when all are done.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int, int64_t, int64_t)>& fn);

 private:
  // One thread's range in chunks of `grain`: front in the high 32 bits, back in the low.
  struct alignas(64) Range {
    std::atomic<uint64_t> bounds{0};
  };

  void worker(int index);
  void run_ranges(int index, const std::function<void(int, int64_t, int64_t)>& fn, int64_t n, int64_t grain);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  const std::function<void(int, int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0, job_grain_ = 1;
  std::atomic<uint64_t> generation_{0};  // written under mu_; polled without it
  std::atomic<int> pending_{0};          // workers still running the current job
  std::vector<Range> ranges_;            // one per thread, set before each job
  bool stopping_ = false;
};

}  // namespace clusterd
