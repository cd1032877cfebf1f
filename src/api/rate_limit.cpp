#include "clusterd/api/rate_limit.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace clusterd {

RateLimiter::RateLimiter(std::map<std::string, RateLimit> limits, std::function<double()> now) : now_(std::move(now)) {
  if (!now_) {
    now_ = [] { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); };
  }
  const double t = now_();
  for (auto& [who, limit] : limits) {
    if (limit.requests_per_minute <= 0 && limit.tokens_per_minute <= 0) continue;
    State s;
    s.limit = limit;
    s.requests = {limit.requests_per_minute, t};
    s.tokens = {limit.tokens_per_minute, t};
    states_.emplace(who, s);
  }
}

void RateLimiter::refill(Bucket& b, double per_minute, double now) const {
  b.level = std::min(per_minute, b.level + (now - b.updated) * per_minute / 60.0);
  b.updated = now;
}

RateLimiter::Decision RateLimiter::admit(const std::string& who, bool count_request) {
  std::lock_guard lock(mu_);
  auto it = states_.find(who);
  if (it == states_.end()) return {};
  State& s = it->second;
  const double now = now_();
  auto wait_for = [](double missing, double per_minute) {
    return std::max(1, static_cast<int>(std::ceil(missing * 60.0 / per_minute)));
  };
  if (count_request && s.limit.requests_per_minute > 0) {
    refill(s.requests, s.limit.requests_per_minute, now);
    if (s.requests.level < 1) {
      return {false, wait_for(1 - s.requests.level, s.limit.requests_per_minute),
              "token '" + who + "' is over its limit of " +
                  std::to_string(static_cast<int64_t>(s.limit.requests_per_minute)) + " requests per minute"};
    }
  }
  if (s.limit.tokens_per_minute > 0) {
    refill(s.tokens, s.limit.tokens_per_minute, now);
    if (s.tokens.level <= 0) {
      return {false, wait_for(-s.tokens.level + 1, s.limit.tokens_per_minute),
              "token '" + who + "' is over its limit of " +
                  std::to_string(static_cast<int64_t>(s.limit.tokens_per_minute)) + " tokens per minute"};
    }
  }
  if (count_request && s.limit.requests_per_minute > 0) s.requests.level -= 1;
  return {};
}

void RateLimiter::charge(const std::string& who, double tokens) {
  std::lock_guard lock(mu_);
  auto it = states_.find(who);
  if (it == states_.end() || it->second.limit.tokens_per_minute <= 0) return;
  refill(it->second.tokens, it->second.limit.tokens_per_minute, now_());
  it->second.tokens.level -= tokens;
}

}  // namespace clusterd
