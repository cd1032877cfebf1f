#include "clusterd/api/auth.h"

#include <toml++/toml.h>

#include <fstream>
#include <sstream>

#include "clusterd/common/crypto.h"

namespace clusterd {

const char* scope_name(Scope scope) {
  switch (scope) {
    case Scope::kRead: return "read";
    case Scope::kInference: return "inference";
    case Scope::kAdmin: return "admin";
  }
  return "unknown";
}

TokenStore::Decision TokenStore::check(std::string_view authorization, Scope needed, std::string& who) const {
  if (open_access()) {
    who = "anonymous";
    return Decision::kAllow;
  }
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.substr(0, kBearer.size()) != kBearer) return Decision::kUnauthenticated;
  std::string_view presented = authorization.substr(kBearer.size());
  for (const auto& t : tokens_) {
    // Compare digests so the time taken does not depend on the token's length or content.
    Digest a = sha256(std::span(reinterpret_cast<const uint8_t*>(t.token.data()), t.token.size()));
    Digest b = sha256(std::span(reinterpret_cast<const uint8_t*>(presented.data()), presented.size()));
    if (constant_time_equal(a, b)) {
      who = t.name;
      return static_cast<int>(t.scope) >= static_cast<int>(needed) ? Decision::kAllow : Decision::kForbidden;
    }
  }
  return Decision::kUnauthenticated;
}

Result<TokenStore> parse_token_text(std::string_view text, const std::string& source) {
  toml::table table;
  try {
    table = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << "token file " << source << ": line " << e.source().begin.line << ": " << e.description();
    return invalid_argument(msg.str());
  }
  auto* list = table["tokens"].as_array();
  if (!list || list->empty()) {
    return invalid_argument("token file " + source + ": no [[tokens]] entries (see configs/tokens.example.toml)");
  }
  std::vector<ApiToken> tokens;
  for (size_t i = 0; i < list->size(); ++i) {
    std::string where = "token file " + source + ": tokens[" + std::to_string(i) + "]";
    auto* entry = (*list)[i].as_table();
    if (!entry) return invalid_argument(where + " must be a table");
    ApiToken t;
    auto name = (*entry)["name"].value<std::string>();
    auto token = (*entry)["token"].value<std::string>();
    auto* scopes = (*entry)["scopes"].as_array();
    if (!name || name->empty()) return invalid_argument(where + ": key 'name' must be a non-empty string");
    if (!token || token->size() < 16)
      return invalid_argument(where + " ('" + *name + "'): key 'token' must be a string of at least 16 characters");
    if (!scopes || scopes->empty())
      return invalid_argument(where + " ('" + *name + "'): key 'scopes' must list read, inference or admin");
    t.name = *name;
    t.token = *token;
    int best = -1;
    for (auto& s : *scopes) {
      auto v = s.value<std::string>();
      int level = !v ? -1 : *v == "read" ? 0 : *v == "inference" ? 1 : *v == "admin" ? 2 : -1;
      if (level < 0) return invalid_argument(where + " ('" + *name + "'): unknown scope; use read, inference or admin");
      best = std::max(best, level);
    }
    t.scope = static_cast<Scope>(best);
    for (auto [key, out] : {std::pair{"requests_per_minute", &t.requests_per_minute},
                            std::pair{"tokens_per_minute", &t.tokens_per_minute}}) {
      if (auto* node = entry->get(key)) {
        auto v = node->value<int64_t>();
        if (!node->is_integer() || !v || *v < 0 || *v > 1'000'000'000) {
          return invalid_argument(where + " ('" + *name + "'): key '" + key +
                                  "' must be an integer from 0 (unlimited) to 1000000000");
        }
        *out = *v;
      }
    }
    for (const auto& other : tokens) {
      if (other.token == t.token) return invalid_argument(where + " ('" + *name + "'): the same token is listed twice");
    }
    tokens.push_back(std::move(t));
  }
  return TokenStore(std::move(tokens));
}

Result<TokenStore> load_token_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return io_error("token file " + path.string() + ": cannot be read (does it exist?)");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_token_text(ss.str(), path.string());
}

}  // namespace clusterd
