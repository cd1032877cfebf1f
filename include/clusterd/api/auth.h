// API bearer tokens with scopes, read from the token file (TOML):
//   [[tokens]]
//   name = "alice"            # shown in logs, never the token itself
//   token = "at least 16 characters"
//   scopes = ["inference"]    # "read", "inference", "admin"
//   requests_per_minute = 60  # optional rate limits; absent or 0: unlimited
//   tokens_per_minute = 20000 # prompt + generated tokens
// "admin" includes "inference", which includes "read".
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "clusterd/common/status.h"

namespace clusterd {

enum class Scope { kRead = 0, kInference = 1, kAdmin = 2 };
const char* scope_name(Scope scope);

struct ApiToken {
  std::string name;
  std::string token;
  Scope scope = Scope::kRead;       // the highest scope listed
  int64_t requests_per_minute = 0;  // 0: unlimited
  int64_t tokens_per_minute = 0;    // 0: unlimited
};

class TokenStore {
 public:
  TokenStore() = default;
  explicit TokenStore(std::vector<ApiToken> tokens) : tokens_(std::move(tokens)) {}

  // True when no token file was given: every request is allowed (loopback only).
  bool open_access() const { return tokens_.empty(); }

  enum class Decision { kAllow, kUnauthenticated, kForbidden };
  // Checks an Authorization header value ("Bearer X") against the scope a route needs.
  // `who` gets the token's name on success.
  Decision check(std::string_view authorization, Scope needed, std::string& who) const;
  const std::vector<ApiToken>& tokens() const { return tokens_; }

 private:
  std::vector<ApiToken> tokens_;
};

Result<TokenStore> parse_token_text(std::string_view text, const std::string& source);
Result<TokenStore> load_token_file(const std::filesystem::path& path);

}  // namespace clusterd
