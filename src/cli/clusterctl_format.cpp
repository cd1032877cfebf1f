#include "clusterctl_format.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <tuple>
#include <utility>

namespace clusterctl {
namespace {

using clusterd::Result;
using clusterd::Status;
using nlohmann::json;

constexpr std::size_t kShortIdLength = 8;
constexpr std::size_t kQuotedBodyLimit = 200;

template <typename... Args>
std::string printf_string(const char* format, Args... args) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, args...);
  return buffer;
}

bool is_utf8_continuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

// Characters on the terminal, not bytes: each UTF-8 sequence counts once.
std::size_t display_width(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(
      text.begin(), text.end(), [](char c) { return !is_utf8_continuation(static_cast<unsigned char>(c)); }));
}

std::string first_chars(std::string_view text, std::size_t count) {
  std::size_t end = 0;
  for (std::size_t seen = 0; end < text.size(); ++end) {
    if (!is_utf8_continuation(static_cast<unsigned char>(text[end])) && seen++ == count) break;
  }
  return std::string(text.substr(0, end));
}

// Names and messages come from other machines; a control character in them must
// not reach the operator's terminal as an escape sequence.
std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    auto byte = static_cast<unsigned char>(text[i]);
    bool c1_control = byte == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
                      static_cast<unsigned char>(text[i + 1]) <= 0x9F;
    if (byte < 0x20 || byte == 0x7F) {
      out += '?';
    } else if (c1_control) {
      out += '?';
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

// ---- Tolerant field access: a missing or mistyped field is "absent", never a throw.

const json* field(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<std::string> text_field(const json& object, const char* key) {
  const json* value = field(object, key);
  if (value == nullptr || !value->is_string()) return std::nullopt;
  return printable(value->get_ref<const std::string&>());
}

std::string text_or_dash(const json& object, const char* key) { return text_field(object, key).value_or("-"); }

std::optional<double> number_field(const json& object, const char* key) {
  const json* value = field(object, key);
  if (value == nullptr || !value->is_number()) return std::nullopt;
  return value->get<double>();
}

std::optional<std::uint64_t> count_field(const json& object, const char* key) {
  const json* value = field(object, key);
  if (value == nullptr || !value->is_number()) return std::nullopt;
  if (value->is_number_unsigned()) return value->get<std::uint64_t>();
  double number = value->get<double>();
  if (!(number >= 0)) return std::nullopt;
  return static_cast<std::uint64_t>(number);
}

bool flag_field(const json& object, const char* key) {
  const json* value = field(object, key);
  return value != nullptr && value->is_boolean() && value->get<bool>();
}

const json& array_field(const json& object, const char* key) {
  static const json kEmpty = json::array();  // immutable; a fallback for absent lists
  const json* value = field(object, key);
  return value != nullptr && value->is_array() ? *value : kEmpty;
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (const auto& part : parts) {
    if (!out.empty()) out += separator;
    out += part;
  }
  return out;
}

// ---- Units

struct BinaryUnit {
  double divisor;
  const char* name;
};

// The largest unit that keeps `bytes` under 1024 once rounded to one decimal.
BinaryUnit unit_for(std::uint64_t bytes) {
  static constexpr const char* kNames[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  std::size_t index = 0;
  double divisor = 1;
  while (index + 1 < std::size(kNames) && bytes / divisor >= 1023.95) {
    divisor *= 1024;
    ++index;
  }
  return {divisor, kNames[index]};
}

// ---- Node table cells

std::string node_name_cell(const json& node) {
  std::string name = text_or_dash(node, "name");
  return flag_field(node, "self") ? name + "*" : name;
}

std::string short_id(std::string_view id) { return first_chars(id, kShortIdLength); }

std::string memory_cell(const json& node) {
  auto total = count_field(node, "memory_total_bytes");
  auto available = count_field(node, "memory_available_bytes");
  if (!total) return "-";
  if (!available) return "?/" + format_bytes(*total);
  return format_memory(*available, *total);
}

// "-", one name, or "2x NVIDIA H100" when a node has several of the same kind.
std::string accelerators_cell(const json& node) {
  std::vector<std::pair<std::string, int>> counted;  // in order of first appearance
  for (const json& accelerator : array_field(node, "accelerators")) {
    std::string name = text_field(accelerator, "name").value_or(text_field(accelerator, "kind").value_or("?"));
    auto same = std::find_if(counted.begin(), counted.end(), [&](const auto& entry) { return entry.first == name; });
    if (same != counted.end()) {
      ++same->second;
    } else {
      counted.emplace_back(std::move(name), 1);
    }
  }
  if (counted.empty()) return "-";
  std::vector<std::string> parts;
  for (const auto& [name, count] : counted) {
    parts.push_back(count > 1 ? std::to_string(count) + "x " + name : name);
  }
  return join(parts, ", ");
}

std::string rdma_cell(const json& node) {
  std::vector<std::string> names;
  for (const json& device : array_field(node, "rdma_devices")) {
    names.push_back(text_or_dash(device, "name"));
  }
  return names.empty() ? "-" : join(names, ", ");
}

std::string last_seen_cell(const json& node) {
  if (flag_field(node, "self")) return "self";
  auto milliseconds = number_field(node, "last_seen_ms");
  return milliseconds ? format_age(static_cast<std::int64_t>(*milliseconds)) : "-";
}

std::vector<std::string> node_row(const json& node) {
  auto cores = count_field(node, "cores");
  return {node_name_cell(node),
          short_id(text_or_dash(node, "id")),
          text_or_dash(node, "address"),
          cores ? std::to_string(*cores) : "-",
          memory_cell(node),
          accelerators_cell(node),
          rdma_cell(node),
          text_or_dash(node, "status"),
          last_seen_cell(node)};
}

// Self first, then by name, then by id so equal names still print in a stable order.
std::vector<const json*> sorted_nodes(const json& nodes) {
  std::vector<const json*> sorted;
  if (nodes.is_array()) {
    for (const json& node : nodes) {
      if (node.is_object()) sorted.push_back(&node);
    }
  }
  auto key = [](const json* node) {
    return std::make_tuple(!flag_field(*node, "self"), text_or_dash(*node, "name"), text_or_dash(*node, "id"));
  };
  std::stable_sort(sorted.begin(), sorted.end(), [&](const json* a, const json* b) { return key(a) < key(b); });
  return sorted;
}

// Node ids are UUIDs; people know nodes by name. An unknown id prints shortened.
std::string node_label(const std::map<std::string, std::string>& names, const json& link, const char* key) {
  auto id = text_field(link, key);
  if (!id) return "-";
  auto found = names.find(*id);
  return found != names.end() ? found->second : short_id(*id);
}

std::string server_message(std::string_view body) {
  json document = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (const json* error = field(document, "error")) {
    if (auto message = text_field(*error, "message")) return *message;
    if (error->is_string()) return printable(error->get_ref<const std::string&>());
  }
  if (auto message = text_field(document, "message")) return *message;
  std::string_view first_line = body.substr(0, body.find('\n'));
  if (first_line.empty()) return "no message in the reply";
  std::string quoted = printable(first_line.substr(0, kQuotedBodyLimit));
  return first_line.size() > kQuotedBodyLimit ? quoted + "..." : quoted;
}

}  // namespace

int exit_code_for(const Status& status) {
  switch (status.code()) {
    case clusterd::StatusCode::kOk: return kExitOk;
    case clusterd::StatusCode::kUnavailable: return kExitUnreachable;
    case clusterd::StatusCode::kPermissionDenied: return kExitAuth;
    default: return kExitFailed;
  }
}

// ---- Server address

Result<ServerUrl> parse_server_url(std::string_view text) {
  const std::string quoted = "--server '" + printable(text) + "'";
  const std::string fix = "; give it as http://host:port, e.g. http://127.0.0.1:8000";
  if (text.empty()) return clusterd::invalid_argument("--server is empty" + fix);

  ServerUrl url;
  std::string_view rest = text;
  if (auto separator = rest.find("://"); separator != std::string_view::npos) {
    url.scheme = std::string(rest.substr(0, separator));
    std::transform(url.scheme.begin(), url.scheme.end(), url.scheme.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    rest.remove_prefix(separator + 3);
  } else {
    url.scheme = "http";
  }
  if (url.scheme != "http" && url.scheme != "https") {
    return clusterd::invalid_argument(quoted + ": scheme '" + printable(url.scheme) + "' is not supported" + fix);
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#") != std::string_view::npos) {
    return clusterd::invalid_argument(quoted + ": a path after host:port is not supported" + fix);
  }
  if (rest.find('@') != std::string_view::npos) {
    return clusterd::invalid_argument(quoted + ": user:password@ is not supported; pass --token instead");
  }

  std::string_view port_text;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos) {
      return clusterd::invalid_argument(quoted + ": '[' without ']' around the IPv6 address" + fix);
    }
    url.host = std::string(rest.substr(1, close - 1));
    std::string_view after = rest.substr(close + 1);
    if (!after.empty() && after.front() != ':') {
      return clusterd::invalid_argument(quoted + ": unexpected text after ']'" + fix);
    }
    port_text = after.empty() ? after : after.substr(1);
  } else {
    auto colon = rest.find(':');
    if (colon != std::string_view::npos && rest.find(':', colon + 1) != std::string_view::npos) {
      return clusterd::invalid_argument(quoted + ": put an IPv6 address in brackets, e.g. http://[::1]:8000");
    }
    url.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port_text = rest.substr(colon + 1);
  }
  if (url.host.empty()) return clusterd::invalid_argument(quoted + ": no host" + fix);

  if (port_text.empty()) {
    url.port = url.scheme == "https" ? 443 : 80;
    return url;
  }
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), url.port);
  if (error != std::errc() || end != port_text.data() + port_text.size() || url.port < 1 || url.port > 65535) {
    return clusterd::invalid_argument(quoted + ": port '" + printable(port_text) + "' is not a number from 1 to 65535");
  }
  return url;
}

std::string to_string(const ServerUrl& url) {
  bool ipv6 = url.host.find(':') != std::string::npos;
  std::string host = ipv6 ? "[" + url.host + "]" : url.host;
  return url.scheme + "://" + host + ":" + std::to_string(url.port);
}

// ---- Errors

Status http_error_status(int http_status, std::string_view body, std::string_view request, bool token_sent) {
  const std::string message = server_message(body);
  const std::string code = std::to_string(http_status);
  if (http_status == 401) {
    if (token_sent) {
      return clusterd::permission_denied("the server rejected the token (401): " + message +
                                         "; check --token or CLUSTERCTL_TOKEN");
    }
    return clusterd::permission_denied("the server requires a token (401): " + message +
                                       "; pass --token or set CLUSTERCTL_TOKEN");
  }
  if (http_status == 403) {
    return clusterd::permission_denied(
        "the token is not allowed to " + std::string(request) + " (403): " + message +
        "; pass a token that has the scope named above with --token or CLUSTERCTL_TOKEN");
  }
  std::string text = std::string(request) + " failed (HTTP " + code + "): " + message;
  if (http_status == 404) return clusterd::not_found(std::move(text));
  if (http_status >= 400 && http_status < 500) return clusterd::invalid_argument(std::move(text));
  return clusterd::internal_error(std::move(text));
}

// ---- Units

std::string format_bytes(std::uint64_t bytes) {
  BinaryUnit unit = unit_for(bytes);
  if (unit.divisor == 1) return std::to_string(bytes) + " B";
  return printf_string("%.1f %s", static_cast<double>(bytes) / unit.divisor, unit.name);
}

std::string format_memory(std::uint64_t available_bytes, std::uint64_t total_bytes) {
  BinaryUnit unit = unit_for(total_bytes);
  if (unit.divisor == 1) {
    return std::to_string(available_bytes) + "/" + std::to_string(total_bytes) + " B";
  }
  return printf_string("%.1f/%.1f %s", static_cast<double>(available_bytes) / unit.divisor,
                       static_cast<double>(total_bytes) / unit.divisor, unit.name);
}

std::string format_age(std::int64_t milliseconds) {
  using Count = long long;
  Count ms = std::max<Count>(milliseconds, 0);  // a peer's clock may run slightly ahead
  if (ms < 10'000) return printf_string("%lld.%llds ago", ms / 1000, ms % 1000 / 100);
  if (ms < 60'000) return printf_string("%llds ago", ms / 1000);
  if (ms < 3'600'000) return printf_string("%lldm ago", ms / 60'000);
  if (ms < 86'400'000) return printf_string("%lldh ago", ms / 3'600'000);
  return printf_string("%lldd ago", ms / 86'400'000);
}

std::string format_rtt(double microseconds) {
  if (!(microseconds >= 0) || std::isinf(microseconds)) return "-";
  if (std::round(microseconds) < 1000) return printf_string("%.0f µs", microseconds);
  double milliseconds = microseconds / 1000;
  if (milliseconds < 9.95) return printf_string("%.1f ms", milliseconds);
  if (std::round(milliseconds) < 1000) return printf_string("%.0f ms", milliseconds);
  return printf_string("%.1f s", milliseconds / 1000);
}

// ---- Tables

std::string format_table(const std::vector<TableColumn>& columns, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& column : columns) widths.push_back(display_width(column.title));
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < widths.size() && i < row.size(); ++i) {
      widths[i] = std::max(widths[i], display_width(row[i]));
    }
  }

  auto append_line = [&](std::string& out, auto cell_at) {
    std::string line;
    for (std::size_t i = 0; i < columns.size(); ++i) {
      const std::string& cell = cell_at(i);
      std::string padding(widths[i] - display_width(cell), ' ');
      if (i > 0) line += "  ";
      line += columns[i].align_right ? padding + cell : cell + padding;
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  };

  std::string out;
  append_line(out, [&](std::size_t i) -> const std::string& { return columns[i].title; });
  static const std::string kEmptyCell;
  for (const auto& row : rows) {
    append_line(out, [&](std::size_t i) -> const std::string& { return i < row.size() ? row[i] : kEmptyCell; });
  }
  return out;
}

std::string format_nodes_table(const json& nodes) {
  static const std::vector<TableColumn> kColumns = {{"NAME"},  {"ID"},   {"ADDRESS"}, {"CORES", true}, {"MEMORY", true},
                                                    {"ACCEL"}, {"RDMA"}, {"STATUS"},  {"LAST SEEN"}};
  std::vector<std::vector<std::string>> rows;
  for (const json* node : sorted_nodes(nodes)) rows.push_back(node_row(*node));
  return format_table(kColumns, rows);
}

Result<std::string> format_devices(const json& devices_doc) {
  const json* nodes = field(devices_doc, "nodes");
  if (nodes == nullptr || !nodes->is_array()) {
    return clusterd::invalid_argument("the reply has no \"nodes\" list");
  }
  return format_nodes_table(*nodes);
}

std::string format_cluster_header(const json& cluster_doc) {
  std::map<std::string, int> by_status;
  for (const json& node : array_field(cluster_doc, "nodes")) ++by_status[text_or_dash(node, "status")];
  const json* healthy = field(cluster_doc, "healthy");
  std::string health = healthy == nullptr || !healthy->is_boolean() ? "health unknown"
                       : healthy->get<bool>()                       ? "healthy"
                                                                    : "DEGRADED";
  std::string line = "cluster " + text_or_dash(cluster_doc, "cluster_id") + "  " + health + "  " +
                     std::to_string(by_status["alive"]) + " alive, " + std::to_string(by_status["suspect"]) +
                     " suspect, " + std::to_string(by_status["gone"]) + " gone";
  int other = 0;
  for (const auto& [status, count] : by_status) {
    if (status != "alive" && status != "suspect" && status != "gone") other += count;
  }
  if (other > 0) line += ", " + std::to_string(other) + " in an unknown state";
  return line + "\n";
}

std::string format_links_table(const json& links, const json& nodes) {
  std::map<std::string, std::string> names;
  if (nodes.is_array()) {
    for (const json& node : nodes) {
      auto id = text_field(node, "id");
      auto name = text_field(node, "name");
      if (id && name) names[*id] = *name;
    }
  }
  std::vector<std::vector<std::string>> rows;
  if (links.is_array()) {
    for (const json& link : links) {
      if (!link.is_object()) continue;
      auto rtt = number_field(link, "rtt_us");
      rows.push_back({node_label(names, link, "from"), node_label(names, link, "to"), text_or_dash(link, "transport"),
                      rtt ? format_rtt(*rtt) : "-", text_or_dash(link, "state")});
    }
  }
  if (rows.empty()) return "no links\n";
  std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return std::tie(a[0], a[1], a[2]) < std::tie(b[0], b[1], b[2]);
  });
  return format_table({{"FROM"}, {"TO"}, {"TRANSPORT"}, {"RTT", true}, {"STATE"}}, rows);
}

Result<std::string> format_cluster_status(const json& cluster_doc) {
  const json* nodes = field(cluster_doc, "nodes");
  if (nodes == nullptr || !nodes->is_array()) {
    return clusterd::invalid_argument("the reply has no \"nodes\" list");
  }
  return format_cluster_header(cluster_doc) + "\n" + format_nodes_table(*nodes) + "\n" +
         format_links_table(array_field(cluster_doc, "links"), *nodes);
}

}  // namespace clusterctl
