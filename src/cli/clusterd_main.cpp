// clusterd: the node agent. `clusterd start` runs it; `clusterd keygen` makes a key.
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "clusterd/api/auth.h"
#include "clusterd/common/config.h"
#include "clusterd/common/crypto.h"
#include "clusterd/common/logging.h"
#include "clusterd/common/node_identity.h"
#include "clusterd/node/agent.h"
#include "clusterd_commands.h"

namespace {

using namespace clusterd;

// Flags as given; each overrides the config file's key of the same name.
struct StartFlags {
  std::string config;
  std::optional<std::string> name, data_dir, api_addr, cluster_key_file, log_level, token_file;
  std::optional<uint16_t> control_port, discovery_port, data_port;
  std::optional<int> beacon_interval_ms, peer_timeout_ms, max_sequences, max_batch_tokens, queue_depth, threads;
  std::optional<int64_t> kv_cache_tokens;
  std::vector<std::string> interfaces, peers;
  bool no_multicast = false;
  bool check_config = false;
};

void add_start_flags(CLI::App* start, StartFlags& f) {
  start->add_option("--config", f.config, "TOML config file (see configs/clusterd.toml)");
  start->add_option("--name", f.name, "node name shown to users (default: the hostname)");
  start->add_option("--data-dir", f.data_dir, "node id, key, logs (default: ~/.clusterd)");
  start->add_option("--api-addr", f.api_addr, "HTTP API HOST:PORT (default: 127.0.0.1:8000)");
  start->add_option("--control-port", f.control_port, "TCP port for peer control links (default: 8001)");
  start->add_option("--discovery-port", f.discovery_port, "UDP port for beacons (default: 8888)");
  start->add_option("--data-port", f.data_port, "TCP port for model data links (default: 8002)");
  start->add_option("--interface", f.interfaces,
                    "interface to discover on (repeatable; default: all up, non-loopback IPv4)");
  start->add_option("--cluster-key-file", f.cluster_key_file,
                    "file holding the cluster key (default: DATA_DIR/cluster.key)");
  start->add_option("--peer", f.peers, "static peer HOST:PORT (its discovery port; repeatable)");
  start->add_flag("--no-multicast", f.no_multicast,
                  "send beacons only to --peer addresses (no multicast or broadcast)");
  start->add_option("--beacon-interval-ms", f.beacon_interval_ms, "time between beacons (default: 1000)");
  start->add_option("--peer-timeout-ms", f.peer_timeout_ms, "silence before a peer is gone (default: 3500)");
  start->add_option("--log-level", f.log_level, "trace, debug, info, warn, error (default: info)");
  start->add_flag("--check-config", f.check_config, "validate the configuration, print it as JSON, and exit");
  start->add_option("--token-file", f.token_file, "API bearer tokens (required when --api-addr is not loopback)");
  start->add_option("--max-sequences", f.max_sequences, "sequences running at once per model (default: 16)");
  start->add_option("--max-batch-tokens", f.max_batch_tokens, "tokens per forward step (default: 512)");
  start->add_option("--queue-depth", f.queue_depth, "requests waiting per model before 503 (default: 64)");
  start->add_option("--kv-cache-tokens", f.kv_cache_tokens,
                    "KV-cache positions per model (default 0: max-sequences x context)");
  start->add_option("--threads", f.threads, "engine threads per model on this node (default 0: every core)");
}

Result<Config> build_config(const StartFlags& f) {
  Config c = default_config();
  if (!f.config.empty()) {
    auto loaded = load_config_file(f.config, c);
    if (!loaded.is_ok()) return loaded.status();
    c = *loaded;
  }
  if (f.name) c.name = *f.name;
  if (f.data_dir) c.data_dir = expand_home(*f.data_dir);
  if (f.api_addr) c.api_addr = *f.api_addr;
  if (f.control_port) c.control_port = *f.control_port;
  if (f.discovery_port) c.discovery_port = *f.discovery_port;
  if (f.data_port) c.data_port = *f.data_port;
  if (!f.interfaces.empty()) c.interfaces = f.interfaces;
  if (f.cluster_key_file) c.cluster_key_file = expand_home(*f.cluster_key_file);
  if (!f.peers.empty()) c.peers = f.peers;
  if (f.no_multicast) c.multicast = false;
  if (f.beacon_interval_ms) c.beacon_interval_ms = *f.beacon_interval_ms;
  if (f.peer_timeout_ms) c.peer_timeout_ms = *f.peer_timeout_ms;
  if (f.log_level) c.log_level = *f.log_level;
  if (f.token_file) c.token_file = expand_home(*f.token_file);
  if (f.max_sequences) c.max_sequences = *f.max_sequences;
  if (f.max_batch_tokens) c.max_batch_tokens = *f.max_batch_tokens;
  if (f.queue_depth) c.queue_depth = *f.queue_depth;
  if (f.kv_cache_tokens) c.kv_cache_tokens = *f.kv_cache_tokens;
  if (f.threads) c.threads = *f.threads;
  if (Status s = validate_config(c); !s.is_ok()) return s;
  return c;
}

// The key from --cluster-key-file, or DATA_DIR/cluster.key (made on first start).
Result<std::string> cluster_key(const Config& c) {
  if (!c.cluster_key_file.empty()) return read_cluster_key_file(c.cluster_key_file);
  auto path = c.data_dir / "cluster.key";
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return read_cluster_key_file(path);
  std::string key = generate_cluster_key();
  if (Status s = write_file_atomically(path, key + "\n", 0600); !s.is_ok()) return s;
  spdlog::warn(
      "no --cluster-key-file: made a new cluster key in {}. Copy that file to every machine of this "
      "cluster and start them with --cluster-key-file FILE",
      path.string());
  return key;
}

int start(const StartFlags& flags) {
  auto config = build_config(flags);
  if (!config.is_ok()) {
    std::fprintf(stderr, "clusterd: %s\n", config.status().message().c_str());
    return kExitConfig;
  }
  if (flags.check_config) {
    const Config& c = *config;
    nlohmann::json doc = {{"name", c.name},
                          {"data_dir", c.data_dir.string()},
                          {"api_addr", c.api_addr},
                          {"control_port", c.control_port},
                          {"discovery_port", c.discovery_port},
                          {"data_port", c.data_port},
                          {"interfaces", c.interfaces},
                          {"cluster_key_file", c.cluster_key_file.string()},
                          {"peers", c.peers},
                          {"multicast", c.multicast},
                          {"beacon_interval_ms", c.beacon_interval_ms},
                          {"peer_timeout_ms", c.peer_timeout_ms},
                          {"log_level", c.log_level},
                          {"token_file", c.token_file.string()},
                          {"max_sequences", c.max_sequences},
                          {"max_batch_tokens", c.max_batch_tokens},
                          {"queue_depth", c.queue_depth},
                          {"kv_cache_tokens", c.kv_cache_tokens},
                          {"threads", c.threads}};
    std::cout << doc.dump(2) << "\n";
    return kExitOk;
  }
  auto identity = load_or_create_identity(config->data_dir);
  if (!identity.is_ok()) {
    std::fprintf(stderr, "clusterd: %s\n", identity.status().message().c_str());
    return kExitConfig;
  }
  if (Status s = setup_logging(config->log_level, config->data_dir / "logs"); !s.is_ok()) {
    std::fprintf(stderr, "clusterd: %s\n", s.message().c_str());
    return kExitConfig;
  }
  if (identity->created) spdlog::info("new node id {} saved in {}", identity->id, config->data_dir.string());
  auto key = cluster_key(*config);
  if (!key.is_ok()) {
    spdlog::critical("{}", key.status().message());
    return kExitConfig;
  }
  TokenStore tokens;
  auto api = *parse_host_port(config->api_addr, "api_addr");
  if (!config->token_file.empty()) {
    auto loaded = load_token_file(config->token_file);
    if (!loaded.is_ok()) {
      spdlog::critical("{}", loaded.status().message());
      return kExitConfig;
    }
    tokens = std::move(*loaded);
  } else if (!(api.host.rfind("127.", 0) == 0 || api.host == "localhost")) {
    spdlog::critical(
        "--api-addr {} listens beyond loopback, so API tokens are required: pass --token-file FILE "
        "(see configs/tokens.example.toml)",
        config->api_addr);
    return kExitConfig;
  }
  Agent agent(*config, *key, *identity, std::move(tokens));
  return agent.run();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"clusterd: a private LLM inference cluster agent"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("clusterd ") + CLUSTERD_VERSION);

  StartFlags flags;
  auto* start_cmd = app.add_subcommand("start", "run this machine's agent in the foreground");
  add_start_flags(start_cmd, flags);
  auto* keygen_cmd = app.add_subcommand("keygen", "print a fresh random cluster key");
  cli::Runner run;
  cli::add_model_commands(app, run);
  cli::add_tokenize_command(app, run);
  cli::add_run_command(app, run);
  cli::add_bench_command(app, run);

  CLI11_PARSE(app, argc, argv);
  if (run) return run();
  if (*keygen_cmd) {
    std::cout << generate_cluster_key() << "\n";
    return 0;
  }
  if (*start_cmd) return start(flags);
  return 0;
}
