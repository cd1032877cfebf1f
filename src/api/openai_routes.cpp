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

}  // namespace

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
  server_->Post("/v1/inference", [this](const httplib::Request& req, httplib::Response& res) {
    if (authorize(req, res, "/v1/inference", Scope::kInference)) inference(req, res);
    count("/v1/inference", res.status);
  });
  server_->Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    if (authorize(req, res, "/v1/completions", Scope::kInference)) completions(req, res, false);
    count("/v1/completions", res.status);
  });
  server_->Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    if (authorize(req, res, "/v1/chat/completions", Scope::kInference)) completions(req, res, true);
    count("/v1/chat/completions", res.status);
  });
}

// /v1/inference: the completions schema with llama.cpp-like sampling defaults, and a
// compact reply with the generated token ids and timings.
void HttpApi::inference(const httplib::Request& req, httplib::Response& res) {
  nlohmann::json body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return set_json_error(res, 400, "the request body must be a JSON object", "invalid_request_error");
  }
  CompletionRequest request;
  request.max_tokens = 128;
  request.temperature = 0.8f;
  request.top_p = 0.95f;
  request.top_k = 40;
  FieldError field;
  if (!parse_completion_request(body, false, request, field)) {
    return set_json_error(res, 400, field.message, "invalid_request_error", field.param);
  }
  if (request.stream)
    return set_json_error(res, 400, "'stream' is for /v1/completions", "invalid_request_error", "stream");
  if (Status s = backend_.check_model(request.model); !s.is_ok()) {
    if (s.code() == StatusCode::kNotFound) return set_json_error(res, 404, s.message(), "not_found_error", "model");
    return set_error(res, s);
  }
  auto r = backend_.complete(request, {});
  if (!r.is_ok()) return set_error(res, r.status());
  set_json(res,
           {{"model", request.model},
            {"text", r->text},
            {"tokens", r->tokens},
            {"finish_reason", r->finish_reason},
            {"usage",
             {{"prompt_tokens", r->prompt_tokens},
              {"completion_tokens", r->completion_tokens},
              {"total_tokens", r->prompt_tokens + r->completion_tokens}}},
            {"timings",
             {{"prompt_ms", r->prompt_ms},
              {"generation_ms", r->generation_ms},
              {"tokens_per_second", r->generation_ms > 0 ? r->completion_tokens * 1000.0 / r->generation_ms : 0.0}}}});
}

void HttpApi::completions(const httplib::Request& req, httplib::Response& res, bool chat) {
  nlohmann::json body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return set_json_error(res, 400, "the request body must be a JSON object", "invalid_request_error");
  }
  auto request = std::make_shared<CompletionRequest>();
  FieldError field;
  if (!parse_completion_request(body, chat, *request, field)) {
    return set_json_error(res, 400, field.message, "invalid_request_error", field.param);
  }
  if (Status s = backend_.check_model(request->model); !s.is_ok()) {
    if (s.code() == StatusCode::kNotFound) return set_json_error(res, 404, s.message(), "not_found_error", "model");
    return set_error(res, s);
  }
  const std::string id = completion_id(chat);
  const int64_t created = unix_seconds();
  if (!request->stream) {
    auto result = backend_.complete(*request, {});
    if (!result.is_ok()) return set_error(res, result.status());
    return set_json(res, completion_response(*request, *result, id, created));
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [this, request, id, created](size_t, httplib::DataSink& sink) {
    bool connected = true;
    if (request->chat) connected = write_event(sink, completion_chunk(*request, id, created, "", "", true).dump());
    auto result = backend_.complete(*request, [&](std::string_view piece) {
      if (connected && !piece.empty()) {
        connected = write_event(sink, completion_chunk(*request, id, created, std::string(piece), "").dump());
      }
      return connected;  // false: the client went away, stop generating
    });
    if (!connected) {
      spdlog::info("http: a streaming client disconnected; its generation was stopped");
      return false;
    }
    if (!result.is_ok()) {
      nlohmann::json err = {{"error",
                             {{"message", result.status().message()},
                              {"type", status_code_name(result.status().code())},
                              {"param", nullptr},
                              {"code", nullptr}}}};
      write_event(sink, err.dump());
    } else {
      write_event(sink, completion_chunk(*request, id, created, "", result->finish_reason).dump());
      if (request->include_usage) write_event(sink, usage_chunk(*request, id, created, *result).dump());
    }
    write_event(sink, "[DONE]");
    sink.done();
    return true;
  });
}

}  // namespace clusterd
