// What clusterctl prints for the documents clusterd sends, and which exit code an
// error leads to.
#include "cli/clusterctl_format.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace clusterctl {
namespace {

using clusterd::Result;
using nlohmann::json;

constexpr std::uint64_t kGiB = 1024ull * 1024 * 1024;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

// Characters (not bytes) before `needle` in `line`, so columns compare as seen on screen.
std::size_t column_of(const std::string& line, const std::string& needle) {
  std::size_t bytes = line.find(needle);
  EXPECT_NE(bytes, std::string::npos) << "'" << needle << "' not in: " << line;
  if (bytes == std::string::npos) return 0;
  std::size_t chars = 0;
  for (std::size_t i = 0; i < bytes; ++i) {
    if ((static_cast<unsigned char>(line[i]) & 0xC0) != 0x80) ++chars;
  }
  return chars;
}

json three_node_devices() {
  return json::parse(R"({"nodes": [
    {"id": "c3a1f9d2-0000-4000-8000-000000000003", "name": "zeta", "status": "suspect",
     "address": "10.0.0.3:7400", "cores": 8,
     "memory_total_bytes": 17179869184, "memory_available_bytes": 8589934592,
     "accelerators": [], "rdma_devices": [], "last_seen_ms": 2500, "self": false},
    {"id": "b2e4c1a0-0000-4000-8000-000000000002", "name": "alpha", "status": "alive",
     "address": "10.0.0.2:7400", "cores": 64,
     "memory_total_bytes": 549755813888, "memory_available_bytes": 412316860416,
     "accelerators": [{"kind": "cuda", "name": "H100", "memory_bytes": 85899345920},
                      {"kind": "cuda", "name": "H100", "memory_bytes": 85899345920}],
     "rdma_devices": [{"name": "mlx5_0", "guid": "0x1", "ports": [1]},
                      {"name": "mlx5_1", "guid": "0x2", "ports": [1]}],
     "last_seen_ms": 400, "self": false},
    {"id": "a7f3e210-0000-4000-8000-000000000001", "name": "mynode", "status": "alive",
     "address": "10.0.0.1:7400", "cores": 16,
     "memory_total_bytes": 25125558681, "memory_available_bytes": 22870700032,
     "accelerators": [], "rdma_devices": [], "last_seen_ms": 0, "self": true}
  ]})");
}

// ---- Node table

TEST(DevicesTable, ListsSelfFirstMarkedWithStarThenOthersByName) {
  auto lines = lines_of(format_devices(three_node_devices()).value());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0].rfind("NAME", 0), 0u);
  EXPECT_EQ(lines[1].rfind("mynode* ", 0), 0u) << lines[1];
  EXPECT_EQ(lines[2].rfind("alpha ", 0), 0u) << lines[2];
  EXPECT_EQ(lines[3].rfind("zeta ", 0), 0u) << lines[3];
}

TEST(DevicesTable, ShowsTheFirstEightCharactersOfTheId) {
  auto lines = lines_of(format_devices(three_node_devices()).value());
  EXPECT_NE(lines[1].find(" a7f3e210 "), std::string::npos) << lines[1];
  EXPECT_EQ(lines[1].find("a7f3e210-"), std::string::npos) << lines[1];
}

TEST(DevicesTable, ShowsMemoryAsFreeOverTotalInHumanUnits) {
  auto lines = lines_of(format_devices(three_node_devices()).value());
  EXPECT_NE(lines[1].find("21.3/23.4 GiB"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("384.0/512.0 GiB"), std::string::npos) << lines[2];
}

TEST(DevicesTable, PrintsDashForNoAcceleratorsOrRdmaAndNamesOtherwise) {
  auto lines = lines_of(format_devices(three_node_devices()).value());
  std::size_t accel = column_of(lines[0], "ACCEL");
  std::size_t rdma = column_of(lines[0], "RDMA");
  EXPECT_EQ(lines[1].substr(accel, 2), "- ");
  EXPECT_EQ(lines[1].substr(rdma, 2), "- ");
  EXPECT_EQ(lines[2].substr(accel, 7), "2x H100");
  EXPECT_EQ(lines[2].substr(rdma, 14), "mlx5_0, mlx5_1");
}

TEST(DevicesTable, ShowsSelfAsLastSeenAndOthersAsTimeAgo) {
  auto lines = lines_of(format_devices(three_node_devices()).value());
  EXPECT_EQ(lines[1].substr(lines[1].size() - 4), "self");
  EXPECT_EQ(lines[2].substr(lines[2].size() - 8), "0.4s ago");
  EXPECT_EQ(lines[3].substr(lines[3].size() - 8), "2.5s ago");
}

TEST(DevicesTable, AlignsEveryColumnWhenANameIsLong) {
  json doc = three_node_devices();
  doc["nodes"][1]["name"] = "a-very-long-machine-name.rack7.example.org";
  auto lines = lines_of(format_devices(doc).value());
  for (const char* title : {"ID", "ADDRESS", "STATUS", "LAST SEEN"}) {
    std::size_t start = column_of(lines[0], title);
    for (std::size_t row = 1; row < lines.size(); ++row) {
      EXPECT_EQ(lines[row][start - 1], ' ') << title << " in: " << lines[row];
      EXPECT_NE(lines[row][start], ' ') << title << " in: " << lines[row];
    }
  }
  EXPECT_EQ(column_of(lines[3], "c3a1f9d2"), column_of(lines[0], "ID"));
}

TEST(DevicesTable, RightAlignsNumbersAndLeavesNoTrailingSpaces) {
  auto lines = lines_of(format_devices(three_node_devices()).value());
  std::size_t cores_end = column_of(lines[0], "CORES") + 5;
  EXPECT_EQ(lines[1].substr(cores_end - 2, 2), "16");
  EXPECT_EQ(lines[3].substr(cores_end - 2, 2), " 8");
  for (const auto& line : lines) EXPECT_NE(line.back(), ' ') << line;
}

TEST(DevicesTable, ToleratesMissingAndMistypedFields) {
  json doc = json::parse(R"({"nodes": [
    {"id": "d00d", "name": "bare"},
    {"name": 42, "cores": "many", "accelerators": "none", "rdma_devices": null,
     "memory_total_bytes": 1073741824, "self": "yes"},
    "not a node"
  ]})");
  Result<std::string> text = format_devices(doc);
  ASSERT_TRUE(text.is_ok());
  auto lines = lines_of(*text);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1].rfind("-  ", 0), 0u) << lines[1];  // unnamed sorts first
  EXPECT_NE(lines[1].find("?/1.0 GiB"), std::string::npos) << lines[1];
  EXPECT_EQ(lines[2].rfind("bare  d00d", 0), 0u) << lines[2];
}

TEST(DevicesTable, ReplacesControlCharactersInNamesFromPeers) {
  json doc = json::parse(R"({"nodes": [{"name": "evil\u001b[2Jnode", "self": true}]})");
  std::string text = format_devices(doc).value();
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_NE(text.find("evil?[2Jnode*"), std::string::npos) << text;
}

TEST(DevicesTable, RejectsADocumentWithoutNodes) {
  Result<std::string> text = format_devices(json::parse(R"({"status": "ok"})"));
  ASSERT_FALSE(text.is_ok());
  EXPECT_NE(text.status().message().find("\"nodes\""), std::string::npos);
  EXPECT_FALSE(format_devices(json::parse("[1, 2]")).is_ok());
}

// ---- Units

TEST(Units, BytesUseBinaryUnitsWithOneDecimal) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(512ull * 1024 * 1024), "512.0 MiB");
  EXPECT_EQ(format_bytes(25125558681ull), "23.4 GiB");
  EXPECT_EQ(format_bytes(1024 * kGiB - 1), "1.0 TiB");
}

TEST(Units, MemoryTakesItsUnitFromTheTotal) {
  EXPECT_EQ(format_memory(22870700032ull, 25125558681ull), "21.3/23.4 GiB");
  EXPECT_EQ(format_memory(512ull * 1024 * 1024, 2 * kGiB), "0.5/2.0 GiB");
  EXPECT_EQ(format_memory(100, 1000), "100/1000 B");
}

TEST(Units, AgeShowsTenthsUnderTenSecondsThenCoarserUnits) {
  EXPECT_EQ(format_age(0), "0.0s ago");
  EXPECT_EQ(format_age(400), "0.4s ago");
  EXPECT_EQ(format_age(9999), "9.9s ago");
  EXPECT_EQ(format_age(42'000), "42s ago");
  EXPECT_EQ(format_age(5 * 60'000 + 12'000), "5m ago");
  EXPECT_EQ(format_age(3 * 3'600'000), "3h ago");
  EXPECT_EQ(format_age(2 * 86'400'000), "2d ago");
  EXPECT_EQ(format_age(-30), "0.0s ago");
}

TEST(Units, RttInMicrosecondsMillisecondsOrSeconds) {
  EXPECT_EQ(format_rtt(182), "182 µs");
  EXPECT_EQ(format_rtt(999.4), "999 µs");
  EXPECT_EQ(format_rtt(999.6), "1.0 ms");
  EXPECT_EQ(format_rtt(1300), "1.3 ms");
  EXPECT_EQ(format_rtt(42'000), "42 ms");
  EXPECT_EQ(format_rtt(1'234'000), "1.2 s");
  EXPECT_EQ(format_rtt(-1), "-");
}

// ---- Cluster status

json two_node_cluster(bool healthy) {
  json cluster = json::parse(R"({
    "cluster_id": "5f0c9a7e-1111-4222-8333-444455556666",
    "nodes": [
      {"id": "a7f3e210-0000-4000-8000-000000000001", "name": "mynode", "status": "alive", "self": true},
      {"id": "b2e4c1a0-0000-4000-8000-000000000002", "name": "alpha", "status": "gone",
       "last_seen_ms": 45000}
    ],
    "links": [
      {"from": "a7f3e210-0000-4000-8000-000000000001", "to": "b2e4c1a0-0000-4000-8000-000000000002",
       "transport": "rdma", "rtt_us": 182, "state": "up"},
      {"from": "a7f3e210-0000-4000-8000-000000000001", "to": "ffffeeee-0000-4000-8000-000000000009",
       "transport": "tcp", "rtt_us": 1300, "state": "connecting"}
    ]})");
  cluster["healthy"] = healthy;
  return cluster;
}

TEST(ClusterStatus, HeaderSaysHealthyAndCountsNodesByStatus) {
  EXPECT_EQ(format_cluster_header(two_node_cluster(true)),
            "cluster 5f0c9a7e-1111-4222-8333-444455556666  healthy  1 alive, 0 suspect, 1 gone\n");
}

TEST(ClusterStatus, HeaderShoutsDegraded) {
  EXPECT_NE(format_cluster_header(two_node_cluster(false)).find("  DEGRADED  "), std::string::npos);
}

TEST(ClusterStatus, HeaderWithoutHealthSaysUnknown) {
  EXPECT_NE(format_cluster_header(json::object()).find("health unknown"), std::string::npos);
}

TEST(ClusterStatus, LinksShowNodeNamesAndShortIdsForUnknownNodes) {
  json cluster = two_node_cluster(true);
  auto lines = lines_of(format_links_table(cluster["links"], cluster["nodes"]));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "FROM    TO        TRANSPORT     RTT  STATE");
  EXPECT_EQ(lines[1], "mynode  alpha     rdma       182 µs  up");
  EXPECT_EQ(lines[2], "mynode  ffffeeee  tcp        1.3 ms  connecting");
}

TEST(ClusterStatus, SaysNoLinksWhenThereAreNone) {
  EXPECT_EQ(format_links_table(json::array(), json::array()), "no links\n");
  EXPECT_EQ(format_links_table(json(), json()), "no links\n");
}

TEST(ClusterStatus, PrintsHeaderNodesAndLinksInThatOrder) {
  std::string text = format_cluster_status(two_node_cluster(false)).value();
  std::size_t header = text.find("DEGRADED");
  std::size_t nodes = text.find("NAME");
  std::size_t links = text.find("FROM");
  EXPECT_LT(header, nodes);
  EXPECT_LT(nodes, links);
  EXPECT_NE(text.find("45s ago"), std::string::npos);
}

TEST(ClusterStatus, ToleratesAMissingLinksList) {
  json cluster = two_node_cluster(true);
  cluster.erase("links");
  Result<std::string> text = format_cluster_status(cluster);
  ASSERT_TRUE(text.is_ok());
  EXPECT_NE(text->find("no links"), std::string::npos);
}

// ---- Server address

TEST(ServerUrl, AcceptsHostPortWithOrWithoutScheme) {
  auto url = parse_server_url("http://127.0.0.1:8000");
  ASSERT_TRUE(url.is_ok());
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, 8000);
  EXPECT_EQ(to_string(parse_server_url("node7:9000/").value()), "http://node7:9000");
  EXPECT_EQ(to_string(parse_server_url("HTTP://node7").value()), "http://node7:80");
  EXPECT_EQ(to_string(parse_server_url("https://node7").value()), "https://node7:443");
  EXPECT_EQ(to_string(parse_server_url("http://[::1]:8000").value()), "http://[::1]:8000");
}

TEST(ServerUrl, RejectsWhatItCannotReachWithTheFix) {
  for (const char* bad : {"", "ftp://x:1", "http://x:8000/api", "http://x:0", "http://x:http", "http://:8000",
                          "::1:8000", "http://[::1", "http://u:p@x:1"}) {
    auto url = parse_server_url(bad);
    ASSERT_FALSE(url.is_ok()) << bad;
    EXPECT_EQ(url.status().code(), clusterd::StatusCode::kInvalidArgument);
    EXPECT_NE(url.status().message().find("--server"), std::string::npos) << url.status().message();
  }
}

// ---- Errors and exit codes

TEST(HttpErrors, UnauthorizedAsksForATokenAndExitsThree) {
  auto status = http_error_status(401, R"({"error":{"message":"missing bearer token","type":"auth"}})",
                                  "GET /v1/devices", /*token_sent=*/false);
  EXPECT_EQ(status.message(),
            "the server requires a token (401): missing bearer token; pass --token or set "
            "CLUSTERCTL_TOKEN");
  EXPECT_EQ(exit_code_for(status), kExitAuth);
}

TEST(HttpErrors, UnauthorizedWithATokenSaysTheTokenWasRejected) {
  auto status =
      http_error_status(401, R"({"error":{"message":"unknown token"}})", "GET /v1/devices", /*token_sent=*/true);
  EXPECT_EQ(status.message().rfind("the server rejected the token (401): unknown token", 0), 0u);
  EXPECT_EQ(exit_code_for(status), kExitAuth);
}

TEST(HttpErrors, ForbiddenKeepsTheScopeFromTheServerAndExitsThree) {
  auto status = http_error_status(403, R"({"error":{"message":"token lacks scope 'cluster:read'"}})", "GET /v1/cluster",
                                  /*token_sent=*/true);
  EXPECT_NE(status.message().find("(403): token lacks scope 'cluster:read'"), std::string::npos);
  EXPECT_NE(status.message().find("GET /v1/cluster"), std::string::npos);
  EXPECT_EQ(exit_code_for(status), kExitAuth);
}

TEST(HttpErrors, OtherErrorsCarryTheServerMessageAndExitOne) {
  auto status =
      http_error_status(500, R"({"error":{"message":"inventory failed","type":"internal"}})", "GET /v1/devices", false);
  EXPECT_EQ(status.message(), "GET /v1/devices failed (HTTP 500): inventory failed");
  EXPECT_EQ(exit_code_for(status), kExitFailed);
  EXPECT_EQ(exit_code_for(http_error_status(404, "", "GET /v1/x", false)), kExitFailed);
}

TEST(HttpErrors, QuotesTheFirstLineOfABodyThatIsNotAnErrorDocument) {
  auto status = http_error_status(502, "<html>Bad Gateway</html>\n<body>", "GET /v1/devices", false);
  EXPECT_EQ(status.message(), "GET /v1/devices failed (HTTP 502): <html>Bad Gateway</html>");
  EXPECT_NE(http_error_status(500, "", "GET /", false).message().find("no message"), std::string::npos);
}

TEST(ExitCodes, UnreachableIsTwoAndSuccessIsZero) {
  EXPECT_EQ(exit_code_for(clusterd::unavailable("down")), kExitUnreachable);
  EXPECT_EQ(exit_code_for(clusterd::Status::ok()), kExitOk);
  EXPECT_EQ(exit_code_for(clusterd::invalid_argument("not json")), kExitFailed);
}

}  // namespace
}  // namespace clusterctl
