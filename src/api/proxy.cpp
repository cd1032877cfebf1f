// Forwarding generation requests to the node that coordinates the model. Any node
// answers: the request goes to the coordinator's API with the caller's bearer token and
// a proof signed with the cluster key; the reply comes back with its status, and a
// stream comes back event by event. When the caller goes away the upstream connection
// is closed, so the coordinator stops that generation too.
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>

#include "clusterd/api/http_api.h"
#include "clusterd/common/crypto.h"

namespace clusterd {

namespace {

constexpr const char* kForwardHeader = "X-Clusterd-Forwarded";
constexpr int64_t kForwardWindowMs = 60'000;  // a proof older than this is refused

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string proof_at(const std::string& key, int64_t ms, const httplib::Request& req) {
  std::string data = "clusterd-forward\n" + std::to_string(ms) + "\n" + req.path + "\n" +
                     req.get_header_value("Authorization") + "\n" + req.body;
  Digest mac = hmac_sha256(key, data);
  return std::to_string(ms) + ":" + to_hex(mac);
}

}  // namespace

// The upstream request, run on a thread of its own; the handler reads what it gets.
struct ProxyUpstream {
  std::unique_ptr<httplib::Client> client;
  std::mutex mu;
  std::condition_variable cv;
  bool have_headers = false;
  bool done = false;
  int status = 0;
  std::string content_type, retry_after, error;
  std::deque<std::string> chunks;
  std::atomic<bool> cancelled{false};

  void abort() {
    cancelled = true;
    client->stop();
  }
};

Status HttpApi::track_upstream(const std::shared_ptr<ProxyUpstream>& up, bool add) {
  std::lock_guard lock(upstreams_mu_);
  if (!add) {
    upstreams_.erase(up);
    return Status::ok();
  }
  if (stopping_) return unavailable("this node is shutting down");
  // Forwards hold a server thread here while they wait; two nodes forwarding to each
  // other could otherwise hold all of each other's threads.
  const size_t limit = static_cast<size_t>(std::max(1, options_.threads / 2));
  if (upstreams_.size() >= limit) {
    return unavailable("this node is already forwarding " + std::to_string(limit) +
                       " requests; send requests to the model's coordinating node or retry shortly");
  }
  upstreams_.insert(up);
  return Status::ok();
}

void HttpApi::abort_upstreams() {
  std::lock_guard lock(upstreams_mu_);
  stopping_ = true;
  for (const auto& up : upstreams_) up->abort();
}

std::string HttpApi::forward_proof(const httplib::Request& req) const {
  return proof_at(options_.forward_key, unix_ms(), req);
}

bool HttpApi::forwarded_by_peer(const httplib::Request& req) const {
  if (options_.forward_key.empty() || !req.has_header(kForwardHeader)) return false;
  const std::string given = req.get_header_value(kForwardHeader);
  const size_t colon = given.find(':');
  if (colon == std::string::npos || colon == 0 || colon > 15) return false;
  int64_t ms = 0;
  for (size_t i = 0; i < colon; ++i) {
    if (given[i] < '0' || given[i] > '9') return false;
    ms = ms * 10 + (given[i] - '0');
  }
  if (std::llabs(unix_ms() - ms) > kForwardWindowMs) return false;
  const std::string expected = proof_at(options_.forward_key, ms, req);
  return expected.size() == given.size() &&
         constant_time_equal(std::span(reinterpret_cast<const uint8_t*>(expected.data()), expected.size()),
                             std::span(reinterpret_cast<const uint8_t*>(given.data()), given.size()));
}

void HttpApi::proxy(const httplib::Request& req, httplib::Response& res, const PeerRoute& route,
                    const std::shared_ptr<GenerationLog>& log) {
  log->proxied_to = route.node;
  auto up = std::make_shared<ProxyUpstream>();
  up->client = std::make_unique<httplib::Client>(route.host, route.port);
  if (Status s = track_upstream(up, true); !s.is_ok()) {
    res.set_header("Retry-After", "1");
    log->error = s.message();
    return set_json_error(res, 503, s.message(), "unavailable");
  }
  up->client->set_connection_timeout(5);
  up->client->set_read_timeout(3600);  // a whole reply can take minutes
  up->client->set_write_timeout(60);
  httplib::Request forward;
  forward.method = "POST";
  forward.path = req.path;
  forward.body = req.body;
  forward.set_header("Content-Type", "application/json");
  if (req.has_header("Authorization")) forward.set_header("Authorization", req.get_header_value("Authorization"));
  forward.set_header(kForwardHeader, forward_proof(req));
  forward.response_handler = [up](const httplib::Response& r) {
    std::lock_guard lock(up->mu);
    up->status = r.status;
    up->content_type = r.get_header_value("Content-Type");
    up->retry_after = r.get_header_value("Retry-After");
    up->have_headers = true;
    up->cv.notify_all();
    return true;
  };
  forward.content_receiver = [up](const char* data, size_t n, uint64_t, uint64_t) {
    if (up->cancelled) return false;  // the caller went away: close the upstream connection
    std::lock_guard lock(up->mu);
    up->chunks.emplace_back(data, n);
    up->cv.notify_all();
    return true;
  };
  std::thread([up, forward = std::move(forward)]() mutable {
    httplib::Response response;
    httplib::Error error = httplib::Error::Success;
    const bool ok = up->client->send(forward, response, error);
    std::lock_guard lock(up->mu);
    if (!ok && !up->cancelled) up->error = httplib::to_string(error);
    if (ok && !up->have_headers) {  // a reply without a body skips the handlers
      up->status = response.status;
      up->content_type = response.get_header_value("Content-Type");
      up->retry_after = response.get_header_value("Retry-After");
      up->have_headers = true;
      if (!response.body.empty()) up->chunks.push_back(response.body);
    }
    up->done = true;
    up->cv.notify_all();
  }).detach();

  std::unique_lock lock(up->mu);
  up->cv.wait(lock, [&] { return up->have_headers || up->done; });
  if (!up->have_headers) {
    lock.unlock();
    (void)track_upstream(up, false);
    res.set_header("Retry-After", "1");
    return set_json_error(res, 502,
                          "model '" + log->model + "' is coordinated by node " + route.node + " (" + route.host + ":" +
                              std::to_string(route.port) + "), which did not answer: " + up->error,
                          "server_error");
  }
  if (up->status != 200 || up->content_type.rfind("text/event-stream", 0) != 0) {
    up->cv.wait(lock, [&] { return up->done; });
    std::string body;
    for (auto& c : up->chunks) body += c;
    const std::string error = up->error;
    lock.unlock();
    (void)track_upstream(up, false);
    if (!error.empty()) {  // the reply broke off: do not pass on half of it
      log->error = error;
      return set_json_error(
          res, 502,
          "node " + route.node + " stopped answering during the reply for model '" + log->model + "': " + error,
          "server_error");
    }
    if (!up->retry_after.empty()) res.set_header("Retry-After", up->retry_after);
    res.status = up->status;
    res.set_content(body, up->content_type.empty() ? "application/json" : up->content_type);
    return;
  }
  lock.unlock();
  log->deferred = true;
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [up](size_t, httplib::DataSink& sink) {
        for (;;) {
          std::deque<std::string> chunks;
          bool done;
          {
            std::unique_lock l(up->mu);
            up->cv.wait(l, [&] { return !up->chunks.empty() || up->done; });
            chunks.swap(up->chunks);
            done = up->done;
          }
          for (const auto& c : chunks) {
            if (!sink.write(c.data(), c.size())) {
              up->abort();
              return false;
            }
          }
          if (done) {
            std::string error;
            {
              std::lock_guard l(up->mu);
              error = up->error;
            }
            if (!error.empty()) {  // the coordinator went away mid-stream: say so, no [DONE]
              const std::string event =
                  "data: " +
                  error_document("the coordinating node stopped answering: " + error, "server_error").dump() + "\n\n";
              sink.write(event.data(), event.size());
              return false;
            }
            sink.done();
            return true;
          }
        }
      },
      [this, up, log](bool success) {
        if (!success) {
          up->abort();
          if (log->error.empty()) log->error = "the client disconnected; the coordinator's generation was stopped";
        }
        (void)track_upstream(up, false);
        log->status = 200;
        log->write();
      });
}

}  // namespace clusterd
