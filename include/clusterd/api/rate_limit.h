// Per-token rate limits: requests per minute and tokens per minute, each a token
// bucket that holds a minute's allowance and refills continuously. Tokens are charged
// when a request finishes (its prompt and generated tokens), so a large reply can leave
// a debt that the token's next requests wait out.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>

namespace clusterd {

struct RateLimit {
  double requests_per_minute = 0;  // 0: unlimited
  double tokens_per_minute = 0;    // 0: unlimited
};

class RateLimiter {
 public:
  // `now` gives monotonic seconds (a test clock, or the steady clock by default).
  explicit RateLimiter(std::map<std::string, RateLimit> limits, std::function<double()> now = {});

  struct Decision {
    bool allowed = true;
    int retry_after_s = 0;  // when refused: whole seconds until the bucket allows one more
    std::string message;    // when refused: which limit, for the error body
  };
  // Takes one request from `who`'s allowance, or says how long to wait. With
  // `count_request` false only the token allowance is checked (a request another node
  // already counted).
  Decision admit(const std::string& who, bool count_request = true);
  // Charges `tokens` to `who` after a request.
  void charge(const std::string& who, double tokens);

 private:
  struct Bucket {
    double level = 0;
    double updated = 0;
  };
  struct State {
    RateLimit limit;
    Bucket requests, tokens;
  };
  void refill(Bucket& b, double per_minute, double now) const;

  std::function<double()> now_;
  std::mutex mu_;
  std::map<std::string, State> states_;
};

}  // namespace clusterd
