#include "clusterd/common/config.h"

#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <sstream>

namespace clusterd {

Result<HostPort> parse_host_port(std::string_view text, const std::string& what) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) {
    return invalid_argument(what + ": '" + std::string(text) + "' is not HOST:PORT (for example 127.0.0.1:8000)");
  }
  std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535) {
    return invalid_argument(what + ": port '" + std::string(port_text) + "' in '" + std::string(text) +
                            "' must be a number from 1 to 65535");
  }
  return HostPort{std::string(text.substr(0, colon)), static_cast<uint16_t>(port)};
}

const std::vector<std::string>& config_keys() {
  static const std::vector<std::string> keys = {
      "name",       "data_dir",         "api_addr",      "control_port",     "discovery_port",     "data_port",
      "interfaces", "cluster_key_file", "peers",         "multicast",        "beacon_interval_ms", "peer_timeout_ms",
      "log_level",  "token_file",       "max_sequences", "max_batch_tokens", "queue_depth",        "kv_cache_tokens",
      "threads"};
  return keys;
}

std::filesystem::path expand_home(const std::filesystem::path& path) {
  std::string s = path.string();
  if (s == "~" || s.rfind("~/", 0) == 0) {
    const char* home = std::getenv("HOME");
    return std::filesystem::path(home ? home : "/") / s.substr(std::min<size_t>(2, s.size()));
  }
  return path;
}

Config default_config() {
  Config c;
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0 && host[0])
    c.name = host;
  else
    c.name = "node";
  c.data_dir = expand_home("~/.clusterd");
  return c;
}

namespace {

std::string join_keys() {
  std::string out;
  for (const auto& k : config_keys()) out += (out.empty() ? "" : ", ") + k;
  return out;
}

// Reads one typed key; sets `status` on a type error.
class KeyReader {
 public:
  KeyReader(const toml::table& table, const std::string& source) : table_(table), source_(source) {}

  void text(const char* key, std::string& out) {
    if (auto* node = table_.get(key)) {
      if (auto v = node->value<std::string>())
        out = *v;
      else
        fail(key, "a string");
    }
  }
  void path(const char* key, std::filesystem::path& out) {
    std::string s;
    if (table_.contains(key)) {
      text(key, s);
      if (status_.is_ok()) out = expand_home(s);
    }
  }
  void port(const char* key, uint16_t& out) {
    if (auto* node = table_.get(key)) {
      auto v = node->value<int64_t>();
      if (!v || !node->is_integer() || *v < 1 || *v > 65535) return fail(key, "an integer from 1 to 65535");
      out = static_cast<uint16_t>(*v);
    }
  }
  void millis(const char* key, int& out) {
    if (auto* node = table_.get(key)) {
      auto v = node->value<int64_t>();
      if (!v || !node->is_integer() || *v < 1 || *v > 3'600'000)
        return fail(key, "an integer from 1 to 3600000 (milliseconds)");
      out = static_cast<int>(*v);
    }
  }
  template <typename Int>
  void integer(const char* key, Int& out, int64_t min, int64_t max) {
    if (auto* node = table_.get(key)) {
      auto v = node->value<int64_t>();
      if (!v || !node->is_integer() || *v < min || *v > max) {
        std::string expected = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
        return fail(key, expected.c_str());
      }
      out = static_cast<Int>(*v);
    }
  }
  void flag(const char* key, bool& out) {
    if (auto* node = table_.get(key)) {
      if (auto v = node->value<bool>(); v && node->is_boolean())
        out = *v;
      else
        fail(key, "true or false");
    }
  }
  void list(const char* key, std::vector<std::string>& out) {
    auto* node = table_.get(key);
    if (!node) return;
    auto* arr = node->as_array();
    if (!arr) return fail(key, "an array of strings");
    std::vector<std::string> items;
    for (auto& item : *arr) {
      auto v = item.value<std::string>();
      if (!v || !item.is_string()) return fail(key, "an array of strings");
      items.push_back(*v);
    }
    out = std::move(items);
  }
  const Status& status() const { return status_; }

 private:
  void fail(const char* key, const char* expected) {
    if (status_.is_ok()) {
      status_ = invalid_argument("config " + source_ + ": key '" + key + "' must be " + expected);
    }
  }
  const toml::table& table_;
  std::string source_;
  Status status_;
};

}  // namespace

Result<Config> parse_config_text(std::string_view text, const std::string& source, Config base) {
  toml::table table;
  try {
    table = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << "config " << source << ": line " << e.source().begin.line << ", column " << e.source().begin.column << ": "
        << e.description();
    return invalid_argument(msg.str());
  }
  for (auto&& [key, value] : table) {
    const auto& keys = config_keys();
    if (std::find(keys.begin(), keys.end(), std::string(key.str())) == keys.end()) {
      return invalid_argument("config " + source + ": unknown key '" + std::string(key.str()) +
                              "' (known keys: " + join_keys() + ")");
    }
  }
  KeyReader r(table, source);
  r.text("name", base.name);
  r.path("data_dir", base.data_dir);
  r.text("api_addr", base.api_addr);
  r.port("control_port", base.control_port);
  r.port("discovery_port", base.discovery_port);
  r.port("data_port", base.data_port);
  r.list("interfaces", base.interfaces);
  r.path("cluster_key_file", base.cluster_key_file);
  r.list("peers", base.peers);
  r.flag("multicast", base.multicast);
  r.millis("beacon_interval_ms", base.beacon_interval_ms);
  r.millis("peer_timeout_ms", base.peer_timeout_ms);
  r.text("log_level", base.log_level);
  r.path("token_file", base.token_file);
  r.integer("max_sequences", base.max_sequences, 1, 1024);
  r.integer("max_batch_tokens", base.max_batch_tokens, 1, 65536);
  r.integer("queue_depth", base.queue_depth, 0, 100000);
  r.integer("kv_cache_tokens", base.kv_cache_tokens, 0, int64_t{1} << 32);
  r.integer("threads", base.threads, 0, 1024);
  if (!r.status().is_ok()) return r.status();
  return base;
}

Result<Config> load_config_file(const std::filesystem::path& path, Config base) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return not_found("config " + path.string() + ": no such file (see configs/clusterd.toml for an example)");
  }
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return io_error("config " + path.string() + ": cannot be read");
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    text.append(buf, n);
    if (text.size() > (1u << 20)) {
      std::fclose(f);
      return invalid_argument("config " + path.string() + ": larger than 1 MiB; is this the right file?");
    }
  }
  std::fclose(f);
  return parse_config_text(text, path.string(), std::move(base));
}

Status validate_config(const Config& c) {
  if (c.name.empty() || c.name.size() > 63) {
    return invalid_argument("config: key 'name' must be 1 to 63 characters, got '" + c.name + "'");
  }
  for (char ch : c.name) {
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.')) {
      return invalid_argument("config: key 'name' may hold letters, digits, '-', '_' and '.', got '" + c.name + "'");
    }
  }
  if (c.data_dir.empty()) return invalid_argument("config: key 'data_dir' must not be empty");
  if (auto r = parse_host_port(c.api_addr, "config: key 'api_addr'"); !r.is_ok()) return r.status();
  for (const auto& p : c.peers) {
    if (auto r = parse_host_port(p, "config: key 'peers'"); !r.is_ok()) return r.status();
  }
  if (c.beacon_interval_ms < 10) {
    return invalid_argument("config: key 'beacon_interval_ms' must be at least 10");
  }
  if (c.peer_timeout_ms < 2 * c.beacon_interval_ms) {
    return invalid_argument("config: key 'peer_timeout_ms' (" + std::to_string(c.peer_timeout_ms) +
                            ") must be at least twice 'beacon_interval_ms' (" + std::to_string(c.beacon_interval_ms) +
                            ") so one lost beacon does not expire a peer");
  }
  static const char* kLevels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  if (std::none_of(std::begin(kLevels), std::end(kLevels), [&](const char* l) { return c.log_level == l; })) {
    return invalid_argument(
        "config: key 'log_level' must be one of trace, debug, info, warn, error, critical, off; got '" + c.log_level +
        "'");
  }
  if (c.max_batch_tokens < c.max_sequences) {
    return invalid_argument("config: key 'max_batch_tokens' (" + std::to_string(c.max_batch_tokens) +
                            ") must be at least 'max_sequences' (" + std::to_string(c.max_sequences) +
                            ") so every running sequence fits in a step");
  }
  if (c.data_port == c.control_port) {
    return invalid_argument("config: keys 'data_port' and 'control_port' must differ");
  }
  if (c.control_port == c.discovery_port) {
    // TCP and UDP could share a number, but one number for two jobs confuses firewall rules.
    return invalid_argument("config: keys 'control_port' and 'discovery_port' must differ");
  }
  return Status::ok();
}

}  // namespace clusterd
