// The OpenAI-compatible routes: /v1/models, /v1/completions, /v1/chat/completions,
// whole replies or server-sent events (one `data: {chunk}` per piece of text, then
// `data: [DONE]`). A client that disconnects mid-stream stops its generation.
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "clusterd/api/http_api.h"

namespace clusterd {

namespace {

int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void set_error(httplib::Response& res, const Status& s) {
  const int code = http_status_for(s.code());
  if (code == 503) res.set_header("Retry-After", "1");
  set_json_error(res, code, s.message(),
                 code == 404   ? "not_found_error"
                 : code == 400 ? "invalid_request_error"
                               : status_code_name(s.code()));
}

bool write_event(httplib::DataSink& sink, const std::string& data) {
  std::string event = "data: " + data + "\n\n";
  return sink.write(event.data(), event.size());
}

// The compact /v1/inference reply (also the last event of its stream).
nlohmann::json inference_response(const CompletionRequest& request, const CompletionResult& r) {
  return {{"model", request.model},
          {"text", r.text},
          {"tokens", r.tokens},
          {"finish_reason", r.finish_reason},
          {"usage",
           {{"prompt_tokens", r.prompt_tokens},
            {"completion_tokens", r.completion_tokens},
            {"total_tokens", r.prompt_tokens + r.completion_tokens}}},
          {"timings", timings_of(r)}};
}

}  // namespace

// One structured line per generation request: who, which model, tokens in and out,
// status and timings. The prompt itself only at debug level.
void GenerationLog::write() const {
  const double latency_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  spdlog::info(
      "request route={} token={} model={} status={} stream={} prompt_tokens={} completion_tokens={} "
      "finish={} queue_ms={:.1f} ttft_ms={:.1f} latency_ms={:.1f}{}{}",
      route, token.empty() ? "-" : token, model.empty() ? "-" : model, status, stream, prompt_tokens, completion_tokens,
      finish_reason.empty() ? "-" : finish_reason, queue_ms, first_token_ms, latency_ms,
      proxied_to.empty() ? "" : " proxied_to=" + proxied_to,
      error.empty() ? "" : " error=" + nlohmann::json(error).dump());
}

void GenerationLog::record(const CompletionResult& r) {
  prompt_tokens = r.prompt_tokens;
  completion_tokens = r.completion_tokens;
  finish_reason = r.finish_reason;
  queue_ms = r.queue_ms;
  first_token_ms = r.first_token_ms;
}

void HttpApi::add_openai_routes() {
  get("/v1/models", Scope::kRead, [this](const auto&, auto& res) { set_json(res, backend_.models_list()); });
  server_->Get(R"(/v1/models/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string route = "/v1/models/{id}";
    if (authorize(req, res, route, Scope::kRead)) {
      const std::string id = req.matches[1];
      nlohmann::json found;
      for (const auto& m : backend_.models_list().value("data", nlohmann::json::array())) {
        if (m.value("id", "") == id) found = m;
      }
      if (found.is_null()) {
        set_json_error(res, 404, "model '" + id + "' is not loaded", "not_found_error", "model");
      } else {
        set_json(res, found);
      }
    }
    count(route, res.status);
  });
  for (const char* route : {"/v1/inference", "/v1/completions", "/v1/chat/completions"}) {
    server_->Post(route, [this, route](const httplib::Request& req, httplib::Response& res) {
      auto log = std::make_shared<GenerationLog>();
      log->route = route;
      if (authorize(req, res, route, Scope::kInference, &log->token) &&
          within_rate_limit(log->token, !forwarded_by_peer(req), res)) {
        generation(req, res, log);
      }
      count(route, res.status);
      if (!log->deferred) {
        log->status = res.status == -1 ? 200 : res.status;
        log->write();
      }
    });
  }
}

bool HttpApi::within_rate_limit(const std::string& who, bool count_request, httplib::Response& res) {
  RateLimiter::Decision d = limiter_.admit(who, count_request);
  if (d.allowed) return true;
  res.set_header("Retry-After", std::to_string(d.retry_after_s));
  set_json_error(res, 429, d.message + "; retry in " + std::to_string(d.retry_after_s) + " s", "rate_limit_error");
  return false;
}

// /v1/completions and /v1/chat/completions follow OpenAI's schemas; /v1/inference takes
// the completions schema with llama.cpp-like sampling defaults and answers compactly
// with the generated token ids and timings. Each answers whole or as server-sent events.
void HttpApi::generation(const httplib::Request& req, httplib::Response& res,
                         const std::shared_ptr<GenerationLog>& log) {
  const bool chat = log->route == "/v1/chat/completions";
  const bool compact = log->route == "/v1/inference";
  nlohmann::json body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return set_json_error(res, 400, "the request body must be a JSON object", "invalid_request_error");
  }
  auto request = std::make_shared<CompletionRequest>();
  if (compact) {
    request->max_tokens = 128;
    request->temperature = 0.8f;
    request->top_p = 0.95f;
    request->top_k = 40;
  }
  FieldError field;
  if (!parse_completion_request(body, chat, *request, field)) {
    return set_json_error(res, 400, field.message, "invalid_request_error", field.param);
  }
  log->model = request->model;
  log->stream = request->stream;
  if (spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug("request route={} token={} body={}", log->route, log->token, body.dump());
  }
  if (!forwarded_by_peer(req)) {
    if (auto route = backend_.coordinator_route(request->model)) return proxy(req, res, *route, log);
  }
  if (Status s = backend_.check_model(request->model); !s.is_ok()) {
    if (s.code() == StatusCode::kNotFound) return set_json_error(res, 404, s.message(), "not_found_error", "model");
    return set_error(res, s);
  }
  const std::string id = completion_id(chat);
  const int64_t created = unix_seconds();
  auto begun = backend_.begin_completion(*request);
  if (!begun.is_ok()) {  // refused before any reply: the status says why (503 queue full, 400...)
    log->error = begun.status().message();
    return set_error(res, begun.status());
  }
  std::shared_ptr<PendingCompletion> pending = std::move(*begun);
  if (!request->stream) {
    auto result = pending->finish({});
    if (!result.is_ok()) {
      log->error = result.status().message();
      return set_error(res, result.status());
    }
    log->record(*result);
    limiter_.charge(log->token, result->prompt_tokens + result->completion_tokens);
    if (compact) return set_json(res, inference_response(*request, *result));
    return set_json(res, completion_response(*request, *result, id, created));
  }
  log->deferred = true;  // written when the stream ends
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, request, pending, id, created, log, compact](size_t, httplib::DataSink& sink) {
        bool connected = true;
        if (request->chat) connected = write_event(sink, completion_chunk(*request, id, created, "", "", true).dump());
        auto result = pending->finish([&](std::string_view piece) {
          if (connected && !piece.empty()) {
            nlohmann::json chunk = compact ? nlohmann::json{{"text", std::string(piece)}}
                                           : completion_chunk(*request, id, created, std::string(piece), "");
            connected = write_event(sink, chunk.dump());
          }
          return connected;  // false: the client went away, stop generating
        });
        if (result.is_ok()) {
          log->record(*result);
          limiter_.charge(log->token, result->prompt_tokens + result->completion_tokens);
        }
        if (!connected) {
          log->error = "the client disconnected; generation stopped";
          return false;
        }
        if (!result.is_ok()) {
          log->status = http_status_for(result.status().code());
          log->error = result.status().message();
          write_event(sink, error_document(result.status().message(), status_code_name(result.status().code())).dump());
        } else if (compact) {
          write_event(sink, inference_response(*request, *result).dump());
        } else {
          write_event(sink, completion_chunk(*request, id, created, "", result->finish_reason).dump());
          if (request->include_usage) write_event(sink, usage_chunk(*request, id, created, *result).dump());
        }
        write_event(sink, "[DONE]");
        sink.done();
        return true;
      },
      [log](bool) {
        if (log->status == 0) log->status = 200;
        log->write();
      });
}

}  // namespace clusterd
