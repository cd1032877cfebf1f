// The HTTP API (cpp-httplib): routes, bearer-token auth, JSON errors, request
// counters, /metrics. What the routes report comes from an ApiBackend the node provides.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "clusterd/api/auth.h"
#include "clusterd/api/metrics.h"
#include "clusterd/api/openai.h"
#include "clusterd/api/rate_limit.h"
#include "clusterd/common/status.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace clusterd {

struct ProxyUpstream;  // proxy.cpp

// A peer's HTTP API that serves a model this node does not coordinate.
struct PeerRoute {
  std::string host;
  uint16_t port = 0;
  std::string node;  // its name, for messages
};

// A generation request accepted by the backend (queued); finish() waits for it.
class PendingCompletion {
 public:
  virtual ~PendingCompletion() = default;
  // Waits for the reply; `on_text` gets each final piece of text and returns false to
  // stop (the client went away).
  virtual Result<CompletionResult> finish(const std::function<bool(std::string_view)>& on_text) = 0;
};

class ApiBackend {
 public:
  virtual ~ApiBackend() = default;
  virtual nlohmann::json node_document() const = 0;     // GET /v1/node
  virtual nlohmann::json devices_document() const = 0;  // GET /v1/devices
  virtual nlohmann::json cluster_document() const = 0;  // GET /v1/cluster
  // Appends the node's own families (peers, beacons, links...) to /metrics.
  virtual void write_metrics(MetricsWriter& out) const = 0;

  // Model instances. Bodies are parsed JSON objects; errors map to HTTP statuses
  // (invalid_argument 400, permission_denied 403, not_found 404, already_exists 409,
  // unavailable 503, deadline_exceeded 504, others 500).
  virtual Result<nlohmann::json> load_model(const nlohmann::json& body) = 0;    // POST /v1/models/load
  virtual Result<nlohmann::json> unload_model(const nlohmann::json& body) = 0;  // POST /v1/models/unload
  virtual nlohmann::json instances_document() const = 0;                        // GET /v1/instances

  // Generation (/v1/inference and the OpenAI surface). `check_model` says whether the
  // model runs here (not_found, or unavailable while it loads).
  virtual Status check_model(const std::string& model) const = 0;
  // Queues one request. Refusals (queue full, too long, not ready) come here, before
  // any reply is started, so that a stream can still answer them with their status.
  virtual Result<std::unique_ptr<PendingCompletion>> begin_completion(const CompletionRequest& request) = 0;
  virtual nlohmann::json models_list() const = 0;  // GET /v1/models
  // Where to forward a generation request for `model` when a live peer coordinates it
  // and this node does not; nullopt otherwise.
  virtual std::optional<PeerRoute> coordinator_route(const std::string& model) const = 0;
};

struct HttpApiOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;
  size_t max_body_bytes = 4u << 20;
  int threads = 128;  // connections served at once (a streaming reply holds one)
  // Signs requests this node forwards to a model's coordinator (and checks those that
  // peers forward here); empty: forwarding is off.
  std::string forward_key;
};

// What the request log line says about one generation request.
struct GenerationLog {
  std::string route, token, model, finish_reason, error;
  std::string proxied_to;  // the coordinator a forwarded request went to
  bool stream = false;
  bool deferred = false;  // a stream: written when it ends
  int status = 0;
  int prompt_tokens = 0, completion_tokens = 0;
  double queue_ms = 0, first_token_ms = 0;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

  void record(const CompletionResult& result);
  void write() const;
};

// Sets a pretty-printed JSON body.
void set_json(httplib::Response& res, const nlohmann::json& doc);
// The HTTP status for an error code (invalid_argument 400, not_found 404, ...).
int http_status_for(StatusCode code);

// An OpenAI-style error {"error":{"message","type","param","code"}} (a body, or the
// event that ends a failed stream).
nlohmann::json error_document(const std::string& message, const std::string& type, const std::string& param = "");

// Sets an OpenAI-style error body {"error":{"message","type","param","code"}}.
void set_json_error(httplib::Response& res, int status, const std::string& message, const std::string& type,
                    const std::string& param = "");

class HttpApi {
 public:
  HttpApi(ApiBackend& backend, TokenStore tokens, HttpApiOptions options);
  ~HttpApi();

  // Binds the port (errors name it and the fix) and serves on a background thread.
  Status start();
  void stop();

 private:
  void add_routes();
  // Wraps a handler with auth for `scope` and request counting under `route`.
  void get(const std::string& route, Scope scope,
           std::function<void(const httplib::Request&, httplib::Response&)> handler);
  // A POST route taking a JSON object body.
  void post(const std::string& route, Scope scope,
            std::function<Result<nlohmann::json>(const nlohmann::json&)> handler);
  // Checks the bearer token for `scope`; `who` gets the token's name.
  bool authorize(const httplib::Request& req, httplib::Response& res, const std::string& route, Scope scope,
                 std::string* who = nullptr);
  void add_openai_routes();  // openai_routes.cpp
  // 429 with Retry-After when `who` is over a rate limit.
  bool within_rate_limit(const std::string& who, bool count_request, httplib::Response& res);
  // Proxying to a model's coordinator (proxy.cpp). A forwarded request carries a
  // proof made with the cluster key, so the coordinator skips the request-count limit
  // that the first node applied.
  std::string forward_proof(const httplib::Request& req) const;
  bool forwarded_by_peer(const httplib::Request& req) const;
  void proxy(const httplib::Request& req, httplib::Response& res, const PeerRoute& route,
             const std::shared_ptr<GenerationLog>& log);
  // Forwards in flight, so that stop() can abort them instead of waiting out replies.
  // Adding refuses (unavailable) while stopping or when half the server's threads
  // already wait on forwards.
  Status track_upstream(const std::shared_ptr<ProxyUpstream>& upstream, bool add);
  void abort_upstreams();
  // /v1/inference, /v1/completions and /v1/chat/completions (log->route says which).
  void generation(const httplib::Request& req, httplib::Response& res, const std::shared_ptr<GenerationLog>& log);
  void count(const std::string& route, int status);
  void write_http_metrics(MetricsWriter& out) const;

  ApiBackend& backend_;
  TokenStore tokens_;
  RateLimiter limiter_;
  HttpApiOptions options_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  mutable std::mutex counts_mu_;
  std::map<std::pair<std::string, int>, uint64_t> counts_;
  std::mutex upstreams_mu_;
  std::set<std::shared_ptr<ProxyUpstream>> upstreams_;
  bool stopping_ = false;  // (upstreams_mu_)
};

}  // namespace clusterd
