// The HTTP client of clusterctl: one clusterd node's JSON API, plain and streamed
// (server-sent events), with errors worded for the person at the terminal.
#pragma once

#include <httplib.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "clusterctl_format.h"
#include "clusterd/common/status.h"

namespace CLI {
class App;
}  // namespace CLI

namespace clusterctl {

using nlohmann::json;

constexpr const char* kDefaultServer = "http://127.0.0.1:8000";
constexpr int kConnectTimeoutSeconds = 3;
constexpr int kPostTimeoutSeconds = 600;  // a load or a long generation
constexpr int kReadTimeoutSeconds = 10;

struct GlobalOptions {
  std::string server = kDefaultServer;
  std::string token;
  bool json = false;
};

// Why a request got no HTTP answer, in the words of someone fixing it.
// `read_timeout_s` is the read timeout the request ran with.
clusterd::Status transport_failure(httplib::Error error, const ServerUrl& url, const std::string& request,
                                   int read_timeout_s = kReadTimeoutSeconds);

// One clusterd node's HTTP API.
class ApiClient {
 public:
  static clusterd::Result<ApiClient> open(const GlobalOptions& options) {
    clusterd::Result<ServerUrl> url = parse_server_url(options.server);
    if (!url.is_ok()) return url.status();
    return ApiClient(*url, options.token);
  }

  // GETs `path` and returns the JSON document, or an error whose message is ready to print.
  clusterd::Result<json> get_json(const std::string& path) { return request_json("GET", path, nullptr); }
  // POSTs `body` to `path` (loads and generation may take minutes).
  clusterd::Result<json> post_json(const std::string& path, const json& body) {
    http_->set_read_timeout(kPostTimeoutSeconds, 0);
    return request_json("POST", path, &body);
  }

  clusterd::Result<json> request_json(const std::string& method, const std::string& path, const json* body) {
    const std::string request = method + " " + path;
    httplib::Result reply =
        body ? http_->Post(path.c_str(), body->dump(), "application/json") : http_->Get(path.c_str());
    if (!reply)
      return transport_failure(reply.error(), url_, request, body ? kPostTimeoutSeconds : kReadTimeoutSeconds);
    if (reply->status < 200 || reply->status > 299) {
      return http_error_status(reply->status, reply->body, request, !token_.empty());
    }
    json document = json::parse(reply->body, nullptr, /*allow_exceptions=*/false);
    if (document.is_discarded()) {
      return clusterd::invalid_argument(request + " at " + server() +
                                        ": the reply is not JSON; is --server pointing at clusterd?");
    }
    return document;
  }

  // POSTs `body` and reads the reply as server-sent events, calling `on_event` with each
  // JSON event until `data: [DONE]`.
  clusterd::Status post_stream(const std::string& path, const json& body,
                               const std::function<void(const json&)>& on_event) {
    const std::string request = "POST " + path;
    http_->set_read_timeout(kPostTimeoutSeconds, 0);
    httplib::Request req;
    req.method = "POST";
    req.path = path;
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    req.set_header("Accept", "text/event-stream");
    int status = 0;
    std::string pending, error_body;
    clusterd::Status event_error;
    req.response_handler = [&](const httplib::Response& r) {
      status = r.status;
      return true;
    };
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      if (status != 200) {
        error_body.append(data, n);
        return true;
      }
      pending.append(data, n);
      for (size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
        std::string event = pending.substr(0, end);
        pending.erase(0, end + 2);
        if (event.rfind("data: ", 0) != 0) continue;
        std::string payload = event.substr(6);
        if (payload == "[DONE]") continue;
        json doc = json::parse(payload, nullptr, false);
        if (doc.is_discarded()) continue;
        if (doc.contains("error")) {
          event_error = clusterd::unavailable(request + ": " + doc["error"].value("message", "the server failed"));
          continue;
        }
        on_event(doc);
      }
      return true;
    };
    httplib::Result reply = http_->send(req);
    if (!reply) return transport_failure(reply.error(), url_, request, kPostTimeoutSeconds);
    if (status < 200 || status > 299) return http_error_status(status, error_body, request, !token_.empty());
    return event_error;
  }

  // Aborts a request in flight; safe from another thread (Ctrl-C during --watch).
  void cancel() { http_->stop(); }

  std::string server() const { return to_string(url_); }

 private:
  ApiClient(ServerUrl url, std::string token) : url_(std::move(url)), token_(std::move(token)) {
    if (url_.scheme == "https") {
      http_ = std::make_unique<httplib::SSLClient>(url_.host, url_.port);
    } else {
      http_ = std::make_unique<httplib::ClientImpl>(url_.host, url_.port);
    }
    http_->set_connection_timeout(kConnectTimeoutSeconds, 0);
    http_->set_read_timeout(kReadTimeoutSeconds, 0);
    http_->set_default_headers(
        {{"Accept", "application/json"}, {"User-Agent", std::string("clusterctl/") + CLUSTERD_VERSION}});
    if (!token_.empty()) http_->set_bearer_token_auth(token_.c_str());
  }

  ServerUrl url_;
  std::string token_;
  std::unique_ptr<httplib::ClientImpl> http_;  // SSLClient for https
};

// clusterctl bench (clusterctl_bench.cpp).
void add_bench_command(CLI::App& app, const GlobalOptions& options, std::function<int()>& chosen);

}  // namespace clusterctl
