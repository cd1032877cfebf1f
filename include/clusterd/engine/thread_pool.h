// A fixed pool of worker threads for data-parallel loops (kernels). The calling thread
// takes part, so a pool of 1 runs everything inline. Threads poll for about 50 µs
// before they block, since the next loop usually follows within microseconds.
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

  // Runs fn(thread_index, begin, end) over [0, n) split into one contiguous range per
  // thread (ranges rounded to multiples of `grain`); returns when all are done.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int, int64_t, int64_t)>& fn);

 private:
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  const std::function<void(int, int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0, job_grain_ = 1;
  std::atomic<uint64_t> generation_{0};  // written under mu_; polled without it
  std::atomic<int> pending_{0};          // workers still running the current job
  bool stopping_ = false;
};

}  // namespace clusterd
