#include "clusterd/api/http_api.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace clusterd {

nlohmann::json error_document(const std::string& message, const std::string& type, const std::string& param) {
  nlohmann::json err = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) err["param"] = param;
  return {{"error", err}};
}

void set_json_error(httplib::Response& res, int status, const std::string& message, const std::string& type,
                    const std::string& param) {
  res.status = status;
  res.set_content(error_document(message, type, param).dump(), "application/json");
}

void set_json(httplib::Response& res, const nlohmann::json& doc) {
  res.status = 200;
  res.set_content(doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", "application/json");
}

namespace {

// httplib 0.11 listens with a backlog of 5, compiled into Debian's library. A burst of
// clients that connect while the accept thread waits for a busy core overflows that
// queue: the kernel drops their handshakes, their requests arrive seconds late, and
// httplib closes such connections unanswered. listen() again on the bound socket
// raises the backlog (Linux and the BSDs allow it); the socket is found by its port.
void widen_listen_backlog(uint16_t port) {
  const int max_fd = static_cast<int>(std::min<long>(::sysconf(_SC_OPEN_MAX), 65536));
  for (int fd = 0; fd < max_fd; ++fd) {
    int listening = 0;
    socklen_t len = sizeof listening;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    sockaddr_storage addr{};
    socklen_t alen = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
    uint16_t bound = 0;
    if (addr.ss_family == AF_INET) bound = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    if (addr.ss_family == AF_INET6) bound = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    if (bound == port && ::listen(fd, SOMAXCONN) != 0) {
      spdlog::warn("api: could not raise the listen backlog: {}", std::strerror(errno));
    }
  }
}

std::map<std::string, RateLimit> rate_limits_of(const TokenStore& tokens) {
  std::map<std::string, RateLimit> limits;
  for (const auto& t : tokens.tokens()) {
    limits[t.name] = {static_cast<double>(t.requests_per_minute), static_cast<double>(t.tokens_per_minute)};
  }
  return limits;
}

}  // namespace

HttpApi::HttpApi(ApiBackend& backend, TokenStore tokens, HttpApiOptions options)
    : backend_(backend),
      tokens_(std::move(tokens)),
      limiter_(rate_limits_of(tokens_)),
      options_(std::move(options)),
      server_(std::make_unique<httplib::Server>()) {
  const size_t threads = static_cast<size_t>(std::max(8, options_.threads));
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  add_routes();
}

HttpApi::~HttpApi() { stop(); }

void HttpApi::count(const std::string& route, int status) {
  if (status == -1) status = 200;  // httplib sets 200 only after the handler returns
  std::lock_guard lock(counts_mu_);
  counts_[{route, status}]++;
}

bool HttpApi::authorize(const httplib::Request& req, httplib::Response& res, const std::string& route, Scope scope,
                        std::string* name) {
  std::string who;
  auto decision = tokens_.check(req.get_header_value("Authorization"), scope, who);
  if (name) *name = who;
  switch (decision) {
    case TokenStore::Decision::kUnauthenticated:
      res.set_header("WWW-Authenticate", "Bearer");
      set_json_error(res, 401, "missing or invalid bearer token; send 'Authorization: Bearer TOKEN'",
                     "authentication_error");
      return false;
    case TokenStore::Decision::kForbidden:
      set_json_error(res, 403, "token '" + who + "' lacks the '" + scope_name(scope) + "' scope for " + route,
                     "permission_error");
      return false;
    case TokenStore::Decision::kAllow: return true;
  }
  return false;
}

void HttpApi::get(const std::string& route, Scope scope,
                  std::function<void(const httplib::Request&, httplib::Response&)> handler) {
  server_->Get(route, [this, route, scope, handler](const httplib::Request& req, httplib::Response& res) {
    if (authorize(req, res, route, scope)) handler(req, res);
    count(route, res.status);
  });
}

int http_status_for(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kAlreadyExists: return 409;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

void HttpApi::post(const std::string& route, Scope scope,
                   std::function<Result<nlohmann::json>(const nlohmann::json&)> handler) {
  server_->Post(route, [this, route, scope, handler](const httplib::Request& req, httplib::Response& res) {
    if (authorize(req, res, route, scope)) {
      nlohmann::json body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
      if (body.is_discarded() || !body.is_object()) {
        set_json_error(res, 400, "the request body must be a JSON object", "invalid_request_error");
      } else {
        auto result = handler(body);
        if (result.is_ok()) {
          set_json(res, *result);
        } else {
          const Status& s = result.status();
          set_json_error(
              res, http_status_for(s.code()), s.message(),
              s.code() == StatusCode::kInvalidArgument ? "invalid_request_error" : status_code_name(s.code()));
        }
      }
    }
    count(route, res.status);
  });
}

void HttpApi::add_routes() {
  server_->set_payload_max_length(options_.max_body_bytes);
  server_->Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    set_json(res, {{"status", "ok"}});
    count("/healthz", 200);
  });
  get("/v1/node", Scope::kRead, [this](const auto&, auto& res) { set_json(res, backend_.node_document()); });
  get("/v1/devices", Scope::kRead, [this](const auto&, auto& res) { set_json(res, backend_.devices_document()); });
  get("/v1/cluster", Scope::kRead, [this](const auto&, auto& res) { set_json(res, backend_.cluster_document()); });
  get("/v1/instances", Scope::kRead, [this](const auto&, auto& res) { set_json(res, backend_.instances_document()); });
  post("/v1/models/load", Scope::kAdmin, [this](const nlohmann::json& b) { return backend_.load_model(b); });
  post("/v1/models/unload", Scope::kAdmin, [this](const nlohmann::json& b) { return backend_.unload_model(b); });
  add_openai_routes();
  get("/metrics", Scope::kRead, [this](const auto&, auto& res) {
    MetricsWriter out;
    backend_.write_metrics(out);
    write_http_metrics(out);
    res.set_content(out.text(), "text/plain; version=0.0.4; charset=utf-8");
  });
  server_->set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a route's own JSON error, already counted
    if (res.status == 404) {
      set_json_error(res, 404, "no route " + req.method + " " + req.path, "not_found_error");
    } else if (res.status == 413) {
      set_json_error(res, 413, "request body exceeds " + std::to_string(options_.max_body_bytes) + " bytes",
                     "invalid_request_error");
    } else if (res.body.empty()) {
      set_json_error(res, res.status, "HTTP error " + std::to_string(res.status), "invalid_request_error");
    }
    count("other", res.status);
  });
  server_->set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("http: {} {} failed: {}", req.method, req.path, what);
    set_json_error(res, 500, "internal error: " + what, "server_error");
    count("other", 500);
  });
}

void HttpApi::write_http_metrics(MetricsWriter& out) const {
  out.family("clusterd_http_requests_total", "counter", "HTTP requests answered, by route and status code.");
  std::lock_guard lock(counts_mu_);
  for (const auto& [key, n] : counts_) {
    out.sample("clusterd_http_requests_total", {{"route", key.first}, {"code", std::to_string(key.second)}},
               static_cast<double>(n));
  }
}

Status HttpApi::start() {
  if (!server_->bind_to_port(options_.host, options_.port)) {
    return unavailable("api: cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                       " (in use, or not an address of this machine); choose another with --api-addr");
  }
  widen_listen_backlog(options_.port);
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // stop() does nothing until the server runs; wait for it (a few ms at most).
  for (int i = 0; i < 2000 && !server_->is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return Status::ok();
}

void HttpApi::stop() {
  abort_upstreams();  // forwarded replies end now instead of when their coordinators finish
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace clusterd
