#include "clusterd/engine/thread_pool.h"

#include <algorithm>

namespace clusterd {

static void range_of(int index, int n_threads, int64_t n, int64_t grain, int64_t& begin, int64_t& end) {
  int64_t chunks = (n + grain - 1) / grain;
  int64_t per = chunks / n_threads, extra = chunks % n_threads;
  int64_t first = index * per + std::min<int64_t>(index, extra);
  int64_t count = per + (index < extra ? 1 : 0);
  begin = std::min(n, first * grain);
  end = std::min(n, (first + count) * grain);
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int, int64_t, int64_t)>* job;
    int64_t n, grain;
    {
      std::unique_lock lock(mu_);
      start_cv_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      job = job_;
      n = job_n_;
      grain = job_grain_;
    }
    int64_t begin, end;
    range_of(index, n_threads_, n, grain, begin, end);
    if (begin < end) (*job)(index, begin, end);
    {
      std::lock_guard lock(mu_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int, int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (n_threads_ == 1 || n <= grain) {
    fn(0, 0, n);
    return;
  }
  {
    std::lock_guard lock(mu_);
    job_ = &fn;
    job_n_ = n;
    job_grain_ = grain;
    pending_ = n_threads_ - 1;
    generation_++;
  }
  start_cv_.notify_all();
  int64_t begin, end;
  range_of(0, n_threads_, n, grain, begin, end);
  if (begin < end) fn(0, begin, end);
  std::unique_lock lock(mu_);
  done_cv_.wait(lock, [&] { return pending_ == 0; });
}

}  // namespace clusterd
