#include "clusterd/engine/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace clusterd {

namespace {

// Thread `index`'s share of `chunks`: the first (chunks % n_threads) threads get one more.
void range_of(int index, int n_threads, int64_t chunks, int64_t& begin, int64_t& end) {
  const int64_t per = chunks / n_threads, extra = chunks % n_threads;
  begin = index * per + std::min<int64_t>(index, extra);
  end = begin + per + (index < extra ? 1 : 0);
}

uint64_t pack(uint64_t front, uint64_t back) { return front << 32 | back; }

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls `done` for a short while before the caller blocks: a kernel's next call
// usually follows within microseconds, and a wakeup through the kernel costs more.
template <typename Done>
bool spin_until(const Done& done) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
  for (int i = 0;; ++i) {
    if (done()) return true;
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) return false;
    cpu_relax();
  }
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)), ranges_(n_threads_) {
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
    spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; });
    const std::function<void(int, int64_t, int64_t)>* job;
    int64_t n, grain;
    {
      std::unique_lock lock(mu_);
      start_cv_.wait(lock, [&] { return stopping_ || generation_.load(std::memory_order_relaxed) != seen; });
      if (stopping_) return;
      seen = generation_.load(std::memory_order_relaxed);
      job = job_;
      n = job_n_;
      grain = job_grain_;
    }
    run_ranges(index, *job, n, grain);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard lock(mu_);
      done_cv_.notify_one();
    }
  }
}

// Own range from the front, a few chunks per claim (a sixteenth of what is left, so
// that claims stay cheap while the range is long and fine near its end); then single
// chunks from the back of every other range, until all are empty.
void ThreadPool::run_ranges(int index, const std::function<void(int, int64_t, int64_t)>& fn, int64_t n, int64_t grain) {
  std::atomic<uint64_t>& own = ranges_[index].bounds;
  for (uint64_t b = own.load(std::memory_order_acquire);;) {
    const uint64_t front = b >> 32, back = b & 0xffffffffu;
    if (front >= back) break;
    const uint64_t take = std::max<uint64_t>(1, (back - front) / 16);
    if (own.compare_exchange_weak(b, pack(front + take, back), std::memory_order_acq_rel)) {
      fn(index, static_cast<int64_t>(front) * grain, std::min<int64_t>(n, static_cast<int64_t>(front + take) * grain));
      b = own.load(std::memory_order_acquire);
    }
  }
  for (int k = 1; k < n_threads_; ++k) {
    std::atomic<uint64_t>& other = ranges_[(index + k) % n_threads_].bounds;
    for (uint64_t b = other.load(std::memory_order_acquire);;) {
      const uint64_t front = b >> 32, back = b & 0xffffffffu;
      if (front >= back) break;
      if (other.compare_exchange_weak(b, pack(front, back - 1), std::memory_order_acq_rel)) {
        fn(index, static_cast<int64_t>(back - 1) * grain, std::min<int64_t>(n, static_cast<int64_t>(back) * grain));
        b = other.load(std::memory_order_acquire);
      }
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int, int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  while ((n + grain - 1) / grain > 0xffffffff) grain *= 2;  // chunk counts fit a range's 32 bits
  if (n_threads_ == 1 || n <= grain) {
    fn(0, 0, n);
    return;
  }
  {
    std::lock_guard lock(mu_);
    job_ = &fn;
    job_n_ = n;
    job_grain_ = grain;
    const int64_t chunks = (n + grain - 1) / grain;
    for (int i = 0; i < n_threads_; ++i) {
      int64_t begin, end;
      range_of(i, n_threads_, chunks, begin, end);
      ranges_[i].bounds.store(pack(begin, end), std::memory_order_relaxed);
    }
    pending_.store(n_threads_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  start_cv_.notify_all();
  run_ranges(0, fn, n, grain);
  if (spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; })) return;
  std::unique_lock lock(mu_);
  done_cv_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
}

}  // namespace clusterd
