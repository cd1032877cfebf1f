// The config file: every key, type errors naming the key, syntax errors with a line,
// and the cross-key checks of validate_config.
#include "clusterd/common/config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "clusterd/common/crypto.h"

namespace clusterd {
namespace {

// A base that passes validation, independent of this machine's hostname and $HOME.
Config valid_config() {
  Config c;
  c.name = "node-1";
  c.data_dir = "/var/lib/clusterd";
  return c;
}

Result<Config> parse(std::string_view text) { return parse_config_text(text, "test.toml", valid_config()); }

// Expects `text` to fail to parse with a message naming `key` and the source.
void expect_error_naming(std::string_view text, const std::string& key) {
  auto c = parse(text);
  ASSERT_FALSE(c.is_ok()) << "accepted: " << text;
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("'" + key + "'"), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find("test.toml"), std::string::npos) << c.status().message();
}

TEST(ParseConfigText, ReadsEveryDocumentedKey) {
  auto c = parse(R"(
name = "gpu-7"
data_dir = "/srv/clusterd"
api_addr = "0.0.0.0:9000"
control_port = 9001
discovery_port = 9888
interfaces = ["eth0", "ib0"]
cluster_key_file = "/etc/clusterd/cluster.key"
peers = ["10.0.0.2:9888", "10.0.0.3:9888"]
multicast = false
beacon_interval_ms = 250
peer_timeout_ms = 900
log_level = "debug"
token_file = "/etc/clusterd/tokens.toml"
)");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->name, "gpu-7");
  EXPECT_EQ(c->data_dir, "/srv/clusterd");
  EXPECT_EQ(c->api_addr, "0.0.0.0:9000");
  EXPECT_EQ(c->control_port, 9001);
  EXPECT_EQ(c->discovery_port, 9888);
  EXPECT_EQ(c->interfaces, (std::vector<std::string>{"eth0", "ib0"}));
  EXPECT_EQ(c->cluster_key_file, "/etc/clusterd/cluster.key");
  EXPECT_EQ(c->peers, (std::vector<std::string>{"10.0.0.2:9888", "10.0.0.3:9888"}));
  EXPECT_FALSE(c->multicast);
  EXPECT_EQ(c->beacon_interval_ms, 250);
  EXPECT_EQ(c->peer_timeout_ms, 900);
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->token_file, "/etc/clusterd/tokens.toml");
  EXPECT_TRUE(validate_config(*c).is_ok()) << validate_config(*c).to_string();
}

TEST(ParseConfigText, ConfigKeysListsEveryKeyTheParserReads) {
  EXPECT_EQ(config_keys(),
            (std::vector<std::string>{"name", "data_dir", "api_addr", "control_port", "discovery_port", "data_port",
                                      "interfaces", "cluster_key_file", "peers", "multicast", "beacon_interval_ms",
                                      "peer_timeout_ms", "log_level", "token_file", "max_sequences", "max_batch_tokens",
                                      "queue_depth", "kv_cache_tokens", "threads"}));
}

TEST(ParseConfigText, ServingLimitsAreReadAndChecked) {
  auto c = parse("max_sequences = 8\nmax_batch_tokens = 256\nqueue_depth = 10\nkv_cache_tokens = 20000\n");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->max_sequences, 8);
  EXPECT_EQ(c->max_batch_tokens, 256);
  EXPECT_EQ(c->queue_depth, 10);
  EXPECT_EQ(c->kv_cache_tokens, 20000);
  EXPECT_TRUE(validate_config(*c).is_ok());
  auto zero = parse("max_sequences = 0\n");
  ASSERT_FALSE(zero.is_ok());
  EXPECT_NE(zero.status().message().find("'max_sequences'"), std::string::npos) << zero.status().message();
  auto small = parse("max_sequences = 64\nmax_batch_tokens = 32\n");
  ASSERT_TRUE(small.is_ok());
  EXPECT_NE(validate_config(*small).message().find("max_batch_tokens"), std::string::npos);
}

TEST(ParseConfigText, KeysNotInTheFileKeepTheBaseValues) {
  auto c = parse("control_port = 7001\n");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->control_port, 7001);
  EXPECT_EQ(c->name, "node-1");
  EXPECT_EQ(c->discovery_port, 8888);
  EXPECT_TRUE(c->multicast);
  EXPECT_EQ(c->api_addr, "127.0.0.1:8000");
}

TEST(ParseConfigText, EmptyTextGivesTheBase) {
  auto c = parse("");
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->name, "node-1");
  EXPECT_EQ(c->beacon_interval_ms, 1000);
}

TEST(ParseConfigText, PathKeysExpandALeadingTilde) {
  const char* home = std::getenv("HOME");
  ASSERT_NE(home, nullptr);
  auto c = parse("data_dir = \"~/cd\"\ntoken_file = \"~/tokens.toml\"\n");
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->data_dir, std::filesystem::path(home) / "cd");
  EXPECT_EQ(c->token_file, std::filesystem::path(home) / "tokens.toml");
}

TEST(ParseConfigText, UnknownKeyIsAnErrorNamingThatKeyAndListingKnownOnes) {
  auto c = parse("control_port = 8001\ncontrol_prot = 8002\n");
  ASSERT_FALSE(c.is_ok());
  const std::string& m = c.status().message();
  EXPECT_NE(m.find("unknown key 'control_prot'"), std::string::npos) << m;
  EXPECT_NE(m.find("control_port"), std::string::npos) << m;  // the known keys, to spot the typo
}

TEST(ParseConfigText, UnknownTableIsAnErrorNamingIt) { expect_error_naming("[discovery]\nport = 1\n", "discovery"); }

TEST(ParseConfigText, PortGivenAsStringIsAnErrorNamingTheKey) {
  expect_error_naming("control_port = \"x\"\n", "control_port");
}

TEST(ParseConfigText, PortOutOfRangeIsAnErrorNamingTheKey) {
  expect_error_naming("discovery_port = 70000\n", "discovery_port");
  expect_error_naming("discovery_port = 0\n", "discovery_port");
  expect_error_naming("control_port = -1\n", "control_port");
}

TEST(ParseConfigText, PortGivenAsFloatIsAnErrorNamingTheKey) {
  expect_error_naming("control_port = 8001.0\n", "control_port");
}

TEST(ParseConfigText, FlagGivenAsNumberIsAnErrorNamingTheKey) { expect_error_naming("multicast = 3\n", "multicast"); }

TEST(ParseConfigText, FlagGivenAsStringIsAnErrorNamingTheKey) {
  expect_error_naming("multicast = \"true\"\n", "multicast");
}

TEST(ParseConfigText, ListHoldingANumberIsAnErrorNamingTheKey) { expect_error_naming("peers = [1]\n", "peers"); }

TEST(ParseConfigText, ListGivenAsStringIsAnErrorNamingTheKey) {
  expect_error_naming("interfaces = \"eth0\"\n", "interfaces");
}

TEST(ParseConfigText, TextGivenAsNumberIsAnErrorNamingTheKey) {
  expect_error_naming("name = 5\n", "name");
  expect_error_naming("log_level = true\n", "log_level");
  expect_error_naming("data_dir = 1\n", "data_dir");
}

TEST(ParseConfigText, MillisecondsOutOfRangeIsAnErrorNamingTheKey) {
  expect_error_naming("beacon_interval_ms = 0\n", "beacon_interval_ms");
  expect_error_naming("peer_timeout_ms = 3600001\n", "peer_timeout_ms");
  expect_error_naming("peer_timeout_ms = \"3s\"\n", "peer_timeout_ms");
}

TEST(ParseConfigText, SyntaxErrorGivesTheSourceAndLineNumber) {
  auto c = parse("name = \"a\"\ncontrol_port = 8001\ndiscovery_port = = 8888\n");
  ASSERT_FALSE(c.is_ok());
  const std::string& m = c.status().message();
  EXPECT_NE(m.find("test.toml"), std::string::npos) << m;
  EXPECT_NE(m.find("line 3"), std::string::npos) << m;
}

TEST(LoadConfigFile, ReadsTheFileAndNamesItInErrors) {
  auto path = std::filesystem::temp_directory_path() / ("clusterd-config-" + make_uuid() + ".toml");
  {
    std::ofstream out(path);
    out << "control_port = 9101\nmulticast = 1\n";
  }
  auto c = load_config_file(path, valid_config());
  std::filesystem::remove(path);
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find(path.string()), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find("'multicast'"), std::string::npos) << c.status().message();
}

TEST(LoadConfigFile, MissingFileIsNotFoundNamingThePath) {
  auto path = std::filesystem::temp_directory_path() / ("clusterd-none-" + make_uuid() + ".toml");
  auto c = load_config_file(path, valid_config());
  ASSERT_FALSE(c.is_ok());
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
  EXPECT_NE(c.status().message().find(path.string()), std::string::npos);
}

TEST(ValidateConfig, AcceptsTheDefaultsWithANameAndDataDir) { EXPECT_TRUE(validate_config(valid_config()).is_ok()); }

TEST(ValidateConfig, RejectsPeerTimeoutBelowTwiceTheIntervalNamingBothKeys) {
  Config c = valid_config();
  c.beacon_interval_ms = 1000;
  c.peer_timeout_ms = 1999;
  Status s = validate_config(c);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("peer_timeout_ms"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("beacon_interval_ms"), std::string::npos) << s.message();

  c.peer_timeout_ms = 2000;
  EXPECT_TRUE(validate_config(c).is_ok()) << validate_config(c).to_string();
}

TEST(ValidateConfig, RejectsAnIntervalBelow10Milliseconds) {
  Config c = valid_config();
  c.beacon_interval_ms = 9;
  c.peer_timeout_ms = 1000;
  Status s = validate_config(c);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("beacon_interval_ms"), std::string::npos) << s.message();
}

TEST(ValidateConfig, RejectsAnUnknownLogLevelListingTheValidOnes) {
  Config c = valid_config();
  c.log_level = "verbose";
  Status s = validate_config(c);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("log_level"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("verbose"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("debug"), std::string::npos) << s.message();
}

TEST(ValidateConfig, AcceptsEveryDocumentedLogLevel) {
  for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
    Config c = valid_config();
    c.log_level = level;
    EXPECT_TRUE(validate_config(c).is_ok()) << level;
  }
}

TEST(ValidateConfig, RejectsAnApiAddrWithoutAValidPort) {
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", ":8000", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http"}) {
    Config c = valid_config();
    c.api_addr = bad;
    Status s = validate_config(c);
    ASSERT_FALSE(s.is_ok()) << bad;
    EXPECT_NE(s.message().find("api_addr"), std::string::npos) << s.message();
  }
}

TEST(ValidateConfig, RejectsABadPeersEntryNamingTheKeyAndTheEntry) {
  Config c = valid_config();
  c.peers = {"10.0.0.2:8888", "10.0.0.3"};
  Status s = validate_config(c);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("peers"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("10.0.0.3"), std::string::npos) << s.message();
}

TEST(ValidateConfig, RejectsANameWithSpaces) {
  Config c = valid_config();
  c.name = "my node";
  Status s = validate_config(c);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("'name'"), std::string::npos) << s.message();
}

TEST(ValidateConfig, RejectsAnEmptyNameAndOneLongerThan63) {
  Config c = valid_config();
  c.name = "";
  EXPECT_FALSE(validate_config(c).is_ok());
  c.name = std::string(64, 'a');
  EXPECT_FALSE(validate_config(c).is_ok());
  c.name = std::string(63, 'a');
  EXPECT_TRUE(validate_config(c).is_ok());
}

TEST(ValidateConfig, AcceptsLettersDigitsDashUnderscoreAndDotInNames) {
  Config c = valid_config();
  c.name = "gpu-node_01.rack2";
  EXPECT_TRUE(validate_config(c).is_ok());
}

TEST(ValidateConfig, RejectsTheSamePortForControlAndDiscovery) {
  Config c = valid_config();
  c.discovery_port = c.control_port;
  Status s = validate_config(c);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("control_port"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("discovery_port"), std::string::npos) << s.message();
}

TEST(ValidateConfig, RejectsAnEmptyDataDir) {
  Config c = valid_config();
  c.data_dir.clear();
  Status s = validate_config(c);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("data_dir"), std::string::npos) << s.message();
}

TEST(ParseHostPort, SplitsHostAndPort) {
  auto hp = parse_host_port("10.1.2.3:8001", "--peer");
  ASSERT_TRUE(hp.is_ok()) << hp.status().to_string();
  EXPECT_EQ(hp->host, "10.1.2.3");
  EXPECT_EQ(hp->port, 8001);
  EXPECT_EQ(hp->to_string(), "10.1.2.3:8001");
}

TEST(ParseHostPort, AcceptsAHostNameAndTheExtremePorts) {
  auto low = parse_host_port("node-a.local:1", "x");
  ASSERT_TRUE(low.is_ok());
  EXPECT_EQ(low->host, "node-a.local");
  EXPECT_EQ(low->port, 1);
  auto high = parse_host_port("node-a:65535", "x");
  ASSERT_TRUE(high.is_ok());
  EXPECT_EQ(high->port, 65535);
}

TEST(ParseHostPort, RejectsMissingHostOrPortNamingTheSetting) {
  for (const char* bad : {"", "10.0.0.1", "10.0.0.1:", ":8000", ":"}) {
    auto hp = parse_host_port(bad, "--api-addr");
    ASSERT_FALSE(hp.is_ok()) << "'" << bad << "'";
    EXPECT_NE(hp.status().message().find("--api-addr"), std::string::npos) << hp.status().message();
  }
}

TEST(ParseHostPort, RejectsPortsOutsideOneTo65535OrNotANumber) {
  for (const char* bad : {"h:0", "h:65536", "h:99999999999", "h:-1", "h:+80", "h:80x", "h: 80", "h:0x50"}) {
    auto hp = parse_host_port(bad, "--api-addr");
    ASSERT_FALSE(hp.is_ok()) << bad << " gave port " << hp->port;
    EXPECT_NE(hp.status().message().find("1 to 65535"), std::string::npos) << hp.status().message();
  }
}

TEST(ExpandHome, ReplacesOnlyALeadingTildeSlash) {
  const char* home = std::getenv("HOME");
  ASSERT_NE(home, nullptr);
  EXPECT_EQ(expand_home("~/x/y"), std::filesystem::path(home) / "x/y");
  EXPECT_EQ(expand_home("/a/~/b"), "/a/~/b");
  EXPECT_EQ(expand_home("~user/x"), "~user/x");
}

}  // namespace
}  // namespace clusterd
