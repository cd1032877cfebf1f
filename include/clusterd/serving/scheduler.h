// Continuous batching on the coordinator. Requests wait in a FIFO queue and join the
// running batch at step boundaries when a sequence slot and their KV-cache positions
// are free. Each step runs, as one forward pass across the group, one token of every
// decoding sequence plus prompt chunks of the sequences still prefilling (as many as
// the step's token budget leaves), so long prompts do not stall running streams. One
// thread drives the runner; callers wait for their own text on their own threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "clusterd/common/histogram.h"
#include "clusterd/common/status.h"
#include "clusterd/engine/generate.h"
#include "clusterd/model/tokenizer.h"

namespace clusterd {

struct SchedulerOptions {
  int max_sequences = 16;       // running at once (at most the KV cache's sequence slots)
  int max_batch_tokens = 512;   // tokens per step: decoding sequences first, then prompt chunks
  int queue_depth = 64;         // requests that may wait for a place; one more is refused (unavailable)
  int64_t kv_cache_tokens = 0;  // positions all running sequences may hold; 0: max_sequences * n_ctx
};

// What the scheduler has done so far, for /metrics. Times in seconds.
struct ServingStats {
  int running = 0;
  int waiting = 0;
  int64_t kv_tokens_in_use = 0;  // positions cached by running sequences
  int64_t kv_tokens_budget = 0;
  uint64_t prompt_tokens = 0;
  uint64_t generated_tokens = 0;
  uint64_t requests_finished = 0;
  uint64_t requests_failed = 0;
  uint64_t requests_cancelled = 0;
  uint64_t requests_refused = 0;  // queue full
  Histogram time_to_first_token{{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};
  Histogram time_per_output_token{{0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2, 2.5}};
  Histogram request_latency{{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}};
  Histogram queue_time{{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}};
  Histogram batch_size{{1, 2, 4, 8, 16, 32, 64, 128, 256}};  // sequences per step
};

class Scheduler {
 public:
  // `runner` and `tokenizer` must outlive stop() (the scheduler's thread is the only
  // user of `runner`); the object itself may outlive them once stopped.
  // `on_step_error` hears every failed step (the caller decides whether it is fatal).
  Scheduler(StepRunner& runner, const Tokenizer& tokenizer, SchedulerOptions options,
            std::function<void(const Status&)> on_step_error = {});
  ~Scheduler() { stop(); }

  // Fails what is still queued or running (unavailable) and stops the thread; after
  // it, generate() is refused. Safe to call more than once.
  void stop();

  // Queues `request` and waits for it, passing each final piece of text to `on_text`
  // on this thread; when `on_text` returns false the sequence is dropped at the next
  // step boundary and its cache freed. Errors: invalid_argument when the request can
  // never fit (context or KV budget), unavailable when the queue is full or the
  // scheduler stops, and whatever a step fails with.
  Result<GenerateResult> generate(GenerateRequest request, const std::function<bool(std::string_view)>& on_text = {});

  // generate() in two halves, so that a caller can answer a refusal (queue full, can
  // never fit) before it commits to a reply, e.g. before a stream's headers go out.
  class Ticket;
  Result<std::shared_ptr<Ticket>> submit(GenerateRequest request);
  Result<GenerateResult> wait(const std::shared_ptr<Ticket>& ticket,
                              const std::function<bool(std::string_view)>& on_text = {});

  ServingStats stats() const;
  const SchedulerOptions& options() const { return options_; }

 private:
  struct Job;
  void loop();
  void admit(std::vector<std::shared_ptr<Job>>& running);
  Status step(std::vector<std::shared_ptr<Job>>& running);
  void finish(Job& job, Status status);

  StepRunner& runner_;
  const Tokenizer& tokenizer_;
  SchedulerOptions options_;
  const int n_ctx_;  // the runner's, read once: callers never touch the runner
  std::function<void(const Status&)> on_step_error_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> waiting_;
  std::vector<int> free_slots_;  // sequence ids not in use
  int64_t kv_reserved_ = 0;      // positions promised to running sequences
  bool stopping_ = false;
  std::once_flag stopped_;
  ServingStats stats_;
  std::thread thread_;
};

}  // namespace clusterd
