#include "clusterd/serving/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <optional>

namespace clusterd {

namespace {

using SteadyClock = std::chrono::steady_clock;

double ms_between(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Prompt tokens a step takes even when decoding sequences fill its budget, so that a
// waiting prompt always moves.
constexpr int kMinPrefillTokens = 16;

}  // namespace

struct Scheduler::Job {
  Job(GenerateRequest r, const Tokenizer& tokenizer) : request(std::move(r)), next(tokenizer, request) {}

  GenerateRequest request;
  Continuation next;  // reads `request`
  SteadyClock::time_point arrived = SteadyClock::now(), admitted, first_token;
  int seq = -1;       // sequence id while running
  int prefilled = 0;  // prompt tokens in the cache
  int64_t kv_tokens = 0;
  std::atomic<bool> cancelled{false};

  // Shared with the waiting caller.
  std::mutex mu;
  std::condition_variable cv;
  std::string text;  // final text the caller has not taken yet
  bool finished = false;
  Status status;
};

Scheduler::Scheduler(StepRunner& runner, const Tokenizer& tokenizer, SchedulerOptions options,
                     std::function<void(const Status&)> on_step_error)
    : runner_(runner),
      tokenizer_(tokenizer),
      options_(options),
      n_ctx_(runner.n_ctx()),
      on_step_error_(std::move(on_step_error)) {
  options_.max_sequences = std::max(1, options_.max_sequences);
  options_.max_batch_tokens = std::max(options_.max_sequences, options_.max_batch_tokens);
  if (options_.kv_cache_tokens <= 0) {
    options_.kv_cache_tokens = static_cast<int64_t>(options_.max_sequences) * n_ctx_;
  }
  for (int seq = options_.max_sequences - 1; seq >= 0; --seq) free_slots_.push_back(seq);
  stats_.kv_tokens_budget = options_.kv_cache_tokens;
  thread_ = std::thread([this] { loop(); });
}

void Scheduler::stop() {
  std::call_once(stopped_, [this] {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  });
}

ServingStats Scheduler::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

// A submitted request; the caller holds it until wait() returns. Requests that finish
// at submission (max_tokens 0) carry their result here.
class Scheduler::Ticket {
 public:
  ~Ticket() {
    if (job && !waited) job->cancelled = true;  // nobody will read it: drop it at the next step
  }
  std::shared_ptr<Job> job;
  std::optional<GenerateResult> immediate;
  bool waited = false;
};

Result<GenerateResult> Scheduler::generate(GenerateRequest request,
                                           const std::function<bool(std::string_view)>& on_text) {
  auto ticket = submit(std::move(request));
  if (!ticket.is_ok()) return ticket.status();
  return wait(*ticket, on_text);
}

Result<std::shared_ptr<Scheduler::Ticket>> Scheduler::submit(GenerateRequest request) {
  if (request.prompt.empty()) return invalid_argument("generate: the prompt has no tokens");
  const int64_t positions = static_cast<int64_t>(request.prompt.size()) + std::max(0, request.max_tokens);
  if (positions > n_ctx_) {
    return invalid_argument(std::to_string(request.prompt.size()) + " prompt tokens plus " +
                            std::to_string(request.max_tokens) + " new tokens exceed the context of " +
                            std::to_string(n_ctx_));
  }
  if (positions > options_.kv_cache_tokens) {
    return invalid_argument("the request needs " + std::to_string(positions) +
                            " KV-cache positions; this instance's budget is " +
                            std::to_string(options_.kv_cache_tokens));
  }
  auto ticket = std::make_shared<Ticket>();
  if (request.max_tokens <= 0) {
    ticket->immediate = GenerateResult{};
    ticket->immediate->finish_reason = "length";
    return ticket;
  }
  auto job = std::make_shared<Job>(std::move(request), tokenizer_);
  job->kv_tokens = positions;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return unavailable("the model instance is shutting down");
    const bool starts_now =
        waiting_.empty() && !free_slots_.empty() && kv_reserved_ + positions <= options_.kv_cache_tokens;
    if (!starts_now && static_cast<int>(waiting_.size()) >= options_.queue_depth) {
      stats_.requests_refused++;
      return unavailable("the request queue is full (" + std::to_string(options_.queue_depth) +
                         " waiting); try again shortly");
    }
    waiting_.push_back(job);
    stats_.waiting = static_cast<int>(waiting_.size());
  }
  wake_.notify_one();
  ticket->job = std::move(job);
  return ticket;
}

Result<GenerateResult> Scheduler::wait(const std::shared_ptr<Ticket>& ticket,
                                       const std::function<bool(std::string_view)>& on_text) {
  if (ticket->immediate) return *ticket->immediate;
  ticket->waited = true;
  const std::shared_ptr<Job>& job = ticket->job;
  for (;;) {
    std::string piece;
    bool finished;
    {
      std::unique_lock lock(job->mu);
      job->cv.wait(lock, [&] { return !job->text.empty() || job->finished; });
      piece.swap(job->text);
      finished = job->finished;
    }
    bool keep = true;
    try {
      keep = piece.empty() || !on_text || job->cancelled || on_text(piece);
    } catch (...) {
      keep = false;
    }
    if (!keep) {
      job->cancelled = true;  // dropped at the next step boundary
      wake_.notify_one();
    }
    if (finished) break;
  }
  if (!job->status.is_ok()) return job->status;
  return std::move(job->next.result());
}

void Scheduler::loop() {
  std::vector<std::shared_ptr<Job>> running;  // in admission order
  for (;;) {
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || !waiting_.empty() || !running.empty(); });
      if (stopping_) break;
    }
    admit(running);
    std::erase_if(running, [&](const std::shared_ptr<Job>& job) {
      if (!job->cancelled) return false;
      job->next.cancel();
      finish(*job, Status::ok());
      return true;
    });
    if (running.empty()) continue;
    Status s;
    try {
      s = step(running);
    } catch (const std::exception& e) {  // e.g. no memory to grow a KV cache
      s = internal_error(std::string("the step failed: ") + e.what());
    }
    if (!s.is_ok()) {
      spdlog::warn("scheduler: a step failed: {}", s.message());
      if (on_step_error_) on_step_error_(s);
      for (auto& job : running) finish(*job, s);
      running.clear();
    }
  }
  for (auto& job : running) finish(*job, unavailable("the model instance was unloaded"));
  std::deque<std::shared_ptr<Job>> left;
  {
    std::lock_guard lock(mu_);
    left.swap(waiting_);
  }
  for (auto& job : left) finish(*job, unavailable("the model instance was unloaded"));
}

// Moves waiting requests into the batch, oldest first, while a sequence slot and their
// KV positions are free. A request that does not fit yet blocks those behind it (FIFO).
void Scheduler::admit(std::vector<std::shared_ptr<Job>>& running) {
  std::vector<std::shared_ptr<Job>> cancelled;
  {
    std::lock_guard lock(mu_);
    while (!waiting_.empty()) {
      std::shared_ptr<Job> job = waiting_.front();
      if (job->cancelled) {
        cancelled.push_back(job);
        waiting_.pop_front();
        continue;
      }
      if (free_slots_.empty() || kv_reserved_ + job->kv_tokens > options_.kv_cache_tokens) break;
      waiting_.pop_front();
      job->seq = free_slots_.back();
      free_slots_.pop_back();
      kv_reserved_ += job->kv_tokens;
      job->admitted = SteadyClock::now();
      job->next.result().queue_ms = ms_between(job->arrived, job->admitted);
      stats_.queue_time.observe(job->next.result().queue_ms / 1000.0);
      stats_.running++;
      running.push_back(std::move(job));
    }
    stats_.waiting = static_cast<int>(waiting_.size());
  }
  for (auto& job : cancelled) {
    job->next.cancel();
    finish(*job, Status::ok());
  }
}

// One forward pass: the next token of every decoding sequence, then prompt chunks.
Status Scheduler::step(std::vector<std::shared_ptr<Job>>& running) {
  std::vector<BatchToken> batch;
  std::vector<Job*> owners;  // the job of each token that asks for logits, in batch order
  int k = 1, sequences = 0;
  for (auto& job : running) {
    if (job->prefilled < static_cast<int>(job->request.prompt.size())) continue;
    batch.push_back({job->next.last_token(), job->next.next_position(), job->seq, true});
    owners.push_back(job.get());
    k = std::max(k, job->next.candidates());
    sequences++;
  }
  int budget = std::max(options_.max_batch_tokens - static_cast<int>(batch.size()), kMinPrefillTokens);
  for (auto& job : running) {
    const auto& prompt = job->request.prompt;
    const int n = static_cast<int>(prompt.size());
    if (job->prefilled == n || budget == 0) continue;
    const int take = std::min(budget, n - job->prefilled);
    for (int i = job->prefilled; i < job->prefilled + take; ++i) batch.push_back({prompt[i], i, job->seq, i == n - 1});
    job->prefilled += take;
    budget -= take;
    sequences++;
    if (job->prefilled == n) {
      owners.push_back(job.get());
      k = std::max(k, job->next.candidates());
    }
  }

  auto lists = runner_.step(batch, k);
  if (!lists.is_ok()) return lists.status();
  if (lists->size() != owners.size()) return internal_error("scheduler: the step returned the wrong number of rows");
  const auto now = SteadyClock::now();
  std::vector<double> first_tokens;
  for (size_t i = 0; i < owners.size(); ++i) {
    Job& job = *owners[i];
    GenerateResult& r = job.next.result();
    if (r.tokens.empty()) {
      job.first_token = now;
      r.prompt_ms = ms_between(job.admitted, now);
      r.first_token_ms = ms_between(job.arrived, now);
      first_tokens.push_back(r.first_token_ms / 1000.0);
    }
    std::string fresh;
    job.next.advance(std::move((*lists)[i]), fresh);
    if (!fresh.empty()) {
      std::lock_guard lock(job.mu);
      job.text += fresh;
    }
    job.cv.notify_all();
  }
  {
    std::lock_guard lock(mu_);
    stats_.batch_size.observe(sequences);
    for (double t : first_tokens) stats_.time_to_first_token.observe(t);
  }
  std::erase_if(running, [&](const std::shared_ptr<Job>& job) {
    if (!job->next.done()) return false;
    finish(*job, Status::ok());
    return true;
  });
  int64_t in_use = 0;
  for (const auto& job : running) in_use += job->prefilled + static_cast<int64_t>(job->next.result().tokens.size());
  std::lock_guard lock(mu_);
  stats_.kv_tokens_in_use = in_use;
  return Status::ok();
}

// Frees the job's sequence, records it, and wakes its caller.
void Scheduler::finish(Job& job, Status status) {
  const auto now = SteadyClock::now();
  GenerateResult& r = job.next.result();
  if (job.seq >= 0) {
    runner_.release(job.seq);
    if (!r.tokens.empty()) r.generation_ms = ms_between(job.first_token, now);
  }
  {
    std::lock_guard lock(mu_);
    if (job.seq >= 0) {
      free_slots_.push_back(job.seq);
      kv_reserved_ -= job.kv_tokens;
      stats_.running--;
      if (stats_.running == 0) stats_.kv_tokens_in_use = 0;
    }
    if (!status.is_ok()) {
      stats_.requests_failed++;
    } else if (job.cancelled) {
      stats_.requests_cancelled++;
    } else {
      stats_.requests_finished++;
      stats_.request_latency.observe(ms_between(job.arrived, now) / 1000.0);
      if (r.tokens.size() > 1) stats_.time_per_output_token.observe(r.generation_ms / 1000.0 / (r.tokens.size() - 1));
    }
    stats_.prompt_tokens += job.prefilled;
    stats_.generated_tokens += r.tokens.size();
  }
  {
    std::lock_guard lock(job.mu);
    job.status = std::move(status);
    job.finished = true;
  }
  job.cv.notify_all();
}

}  // namespace clusterd
