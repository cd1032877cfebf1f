// The agent's configuration: defaults, the TOML file (configs/clusterd.toml documents
// every key), and command-line flags on top. Every error names the key and the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "clusterd/common/status.h"

namespace clusterd {

struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string to_string() const { return host + ":" + std::to_string(port); }
};

// Parses "HOST:PORT" (HOST an IPv4 address or name; port 1-65535). `what` names the
// setting in the error, e.g. "--api-addr".
Result<HostPort> parse_host_port(std::string_view text, const std::string& what);

struct Config {
  std::string name;                // default: the hostname
  std::filesystem::path data_dir;  // default: ~/.clusterd
  std::string api_addr = "127.0.0.1:8000";
  uint16_t control_port = 8001;
  uint16_t discovery_port = 8888;
  uint16_t data_port = 8002;               // TCP data links of model groups
  std::vector<std::string> interfaces;     // empty: every up, non-loopback IPv4 interface
  std::filesystem::path cluster_key_file;  // empty: DATA_DIR/cluster.key, made if missing
  std::vector<std::string> peers;          // static peers, "HOST:PORT" of their discovery port
  bool multicast = true;                   // beacons to the multicast group and broadcast addresses
  int beacon_interval_ms = 1000;
  int peer_timeout_ms = 3500;
  std::string log_level = "info";
  std::filesystem::path token_file;  // API bearer tokens; required beyond loopback
  // Serving (continuous batching on the instances this node coordinates).
  int max_sequences = 16;       // sequences running at once per instance
  int max_batch_tokens = 512;   // tokens per forward step
  int queue_depth = 64;         // waiting requests per instance; more get 503
  int64_t kv_cache_tokens = 0;  // KV positions per instance; 0: max_sequences * ctx
  int threads = 0;              // engine threads per model instance on this node; 0: every core
};

// Every key the config file accepts, in the order configs/clusterd.toml documents them.
const std::vector<std::string>& config_keys();

// The defaults, with `name` and `data_dir` filled from the environment (hostname, $HOME).
Config default_config();

// Reads a TOML file over `base`. Unknown keys and wrong types are errors naming the key.
Result<Config> load_config_file(const std::filesystem::path& path, Config base);
// Parses TOML text (for tests and for `load_config_file`); `source` names it in errors.
Result<Config> parse_config_text(std::string_view text, const std::string& source, Config base);

// Checks values that each key allows and how keys relate (timeout above interval...).
Status validate_config(const Config& config);

// Expands a leading "~/" with $HOME.
std::filesystem::path expand_home(const std::filesystem::path& path);

}  // namespace clusterd
