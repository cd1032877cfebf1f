// The text side of clusterctl: server documents in, terminal text out.
// Everything here is a pure function (no I/O, no clock) so it can be tested from
// sample documents. Documents come from another process, so every field is
// optional: a missing or mistyped field prints as "-" instead of throwing.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "clusterd/common/status.h"

namespace clusterctl {

// Process exit codes; scripts branch on these, so they are part of the CLI contract.
enum ExitCode : int {
  kExitOk = 0,
  kExitFailed = 1,       // the server answered with an error, or with something unreadable
  kExitUnreachable = 2,  // no answer from the server at all
  kExitAuth = 3,         // missing, wrong or under-scoped token
};

// Maps an error from fetching a document to the exit code above:
// kUnavailable -> 2, kPermissionDenied -> 3, anything else -> 1.
int exit_code_for(const clusterd::Status& status);

// ---- Server address ------------------------------------------------------------

struct ServerUrl {
  std::string scheme;  // "http" or "https"
  std::string host;    // without brackets, also for IPv6 ("::1")
  int port = 0;
};

// Parses --server: "http://host:port", "http://host" (port 80), "https://host"
// (port 443), "host:port" (http assumed), "[::1]:8000"; one trailing '/' is
// allowed. A path prefix or another scheme is an invalid_argument naming the fix.
clusterd::Result<ServerUrl> parse_server_url(std::string_view text);

// "http://host:port", brackets around an IPv6 host: how messages name the server.
std::string to_string(const ServerUrl& url);

// ---- Errors --------------------------------------------------------------------

// The error for a non-2xx reply to `request` ("GET /v1/devices"). `body` is the
// reply body; clusterd sends {"error":{"message":...,"type":...}}, other bodies
// are quoted (shortened). 401/403 become permission_denied with a hint about
// --token; everything else keeps the server's words.
clusterd::Status http_error_status(int http_status, std::string_view body, std::string_view request, bool token_sent);

// ---- Units ---------------------------------------------------------------------

// Binary units with one decimal: 17 -> "17 B", 1536 -> "1.5 KiB", 25125558681 -> "23.4 GiB".
std::string format_bytes(std::uint64_t bytes);

// "free/total unit" with the unit chosen from the total: "21.3/23.4 GiB".
std::string format_memory(std::uint64_t available_bytes, std::uint64_t total_bytes);

// Time since a node was last heard from: "0.4s ago", "12s ago", "5m ago", "3h ago", "2d ago".
std::string format_age(std::int64_t milliseconds);

// Round-trip time: "182 µs", "1.3 ms", "42 ms", "1.2 s".
std::string format_rtt(double microseconds);

// ---- Tables --------------------------------------------------------------------

struct TableColumn {
  std::string title;
  bool align_right = false;  // numbers read better right-aligned
};

// Aligns cells into columns two spaces apart, one row per line, no trailing
// spaces. Width counts characters, not bytes, so "µs" and non-ASCII names line up.
std::string format_table(const std::vector<TableColumn>& columns, const std::vector<std::vector<std::string>>& rows);

// The node table (NAME, ID, ADDRESS, CORES, MEMORY, ACCEL, RDMA, STATUS, LAST SEEN)
// for a JSON array of nodes: self first (its name marked with '*'), then by name.
std::string format_nodes_table(const nlohmann::json& nodes);

// The reply of GET /v1/devices as a node table. A document without a "nodes"
// array is an invalid_argument: the server at --server is probably not clusterd.
clusterd::Result<std::string> format_devices(const nlohmann::json& devices_doc);

// One line: cluster id, "healthy" or "DEGRADED", and how many nodes are alive,
// suspect and gone.
std::string format_cluster_header(const nlohmann::json& cluster_doc);

// The links table (FROM, TO, TRANSPORT, RTT, STATE); node ids are replaced by the
// names that `nodes` gives them. Prints "no links" when there are none.
std::string format_links_table(const nlohmann::json& links, const nlohmann::json& nodes);

// The reply of GET /v1/cluster: header, blank line, node table, blank line, links.
clusterd::Result<std::string> format_cluster_status(const nlohmann::json& cluster_doc);

}  // namespace clusterctl
