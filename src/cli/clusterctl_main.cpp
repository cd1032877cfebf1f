// clusterctl: the command-line client of clusterd. It talks to one node over the
// JSON HTTP API only, like curl would, so any node of any build can answer it.
// Text layout lives in clusterctl_format.*; this file parses arguments, fetches
// documents and decides exit codes.
#include <httplib.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "clusterctl_client.h"
#include "clusterctl_format.h"

namespace clusterctl {
namespace {

using clusterd::Result;
using clusterd::Status;
using nlohmann::json;

constexpr auto kWatchInterval = std::chrono::seconds(1);
constexpr const char* kClearScreen = "\x1b[H\x1b[2J";

// Turns SIGINT/SIGTERM into a stop request without a global flag: the signals are
// blocked in every thread and one thread takes them with sigwait.
class InterruptWatcher {
 public:
  explicit InterruptWatcher(std::function<void()> on_interrupt) : on_interrupt_(std::move(on_interrupt)) {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGINT);
    sigaddset(&signals_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals_, &previous_mask_);
    thread_ = std::thread([this] { take_signal(); });
  }

  ~InterruptWatcher() {
    bool wake_thread;
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
      wake_thread = !interrupted_;
    }
    if (wake_thread) pthread_kill(thread_.native_handle(), SIGTERM);
    thread_.join();
    pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
  }

  InterruptWatcher(const InterruptWatcher&) = delete;
  InterruptWatcher& operator=(const InterruptWatcher&) = delete;

  // Sleeps up to `duration`; true once an interrupt has arrived.
  bool wait_for(std::chrono::milliseconds duration) {
    std::unique_lock lock(mutex_);
    return wake_.wait_for(lock, duration, [this] { return interrupted_; });
  }

  bool interrupted() {
    std::lock_guard lock(mutex_);
    return interrupted_;
  }

 private:
  void take_signal() {
    int signal_number = 0;
    sigwait(&signals_, &signal_number);
    {
      std::lock_guard lock(mutex_);
      if (closing_) return;
      interrupted_ = true;
    }
    wake_.notify_all();
    on_interrupt_();
  }

  std::function<void()> on_interrupt_;
  sigset_t signals_;
  sigset_t previous_mask_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool interrupted_ = false;
  bool closing_ = false;
  std::thread thread_;
};

using Formatter = Result<std::string> (*)(const json&);

int fail(const Status& status) {
  std::cerr << "clusterctl: " << status.message() << "\n";
  return exit_code_for(status);
}

// The text for one document: the server's JSON as is with --json, else a table.
Result<std::string> render(ApiClient& client, const std::string& path, Formatter format, bool raw_json) {
  Result<json> document = client.get_json(path);
  if (!document.is_ok()) return document.status();
  if (raw_json) return document->dump(2, ' ', false, json::error_handler_t::replace) + "\n";
  Result<std::string> text = format(*document);
  if (!text.is_ok()) {
    return clusterd::invalid_argument("GET " + path + " at " + client.server() + ": " + text.status().message() +
                                      "; is --server pointing at clusterd?");
  }
  return text;
}

int show_once(const GlobalOptions& options, const std::string& path, Formatter format) {
  Result<ApiClient> client = ApiClient::open(options);
  if (!client.is_ok()) return fail(client.status());
  Result<std::string> text = render(*client, path, format, options.json);
  if (!text.is_ok()) return fail(text.status());
  std::cout << *text << std::flush;
  return kExitOk;
}

std::string clock_time_now() {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char text[16];
  std::strftime(text, sizeof text, "%H:%M:%S", &local);
  return text;
}

// Redraws every second until Ctrl-C (exit 0). A failed fetch is drawn and retried:
// a node restarting should not end the watch. A token problem will not fix itself,
// so it ends the watch with its exit code.
int watch(const GlobalOptions& options, const std::string& path, Formatter format) {
  Result<ApiClient> client = ApiClient::open(options);
  if (!client.is_ok()) return fail(client.status());
  InterruptWatcher interrupt([&client] { client->cancel(); });
  while (!interrupt.interrupted()) {
    Result<std::string> text = render(*client, path, format, options.json);
    if (interrupt.interrupted()) break;
    if (!text.is_ok() && exit_code_for(text.status()) == kExitAuth) return fail(text.status());
    std::string frame = kClearScreen;
    frame += "every 1s: GET " + path + " at " + client->server() + "  " + clock_time_now() + "  (Ctrl-C to stop)\n\n";
    frame += text.is_ok() ? *text : "clusterctl: " + text.status().message() + "\n";
    std::cout << frame << std::flush;
    if (interrupt.wait_for(kWatchInterval)) break;
  }
  return kExitOk;
}

// What the chosen subcommand will do once parsing has succeeded.
using Command = std::function<int()>;

// POSTs and prints the reply: raw with --json, else through `format`.
int post_and_show(const GlobalOptions& options, const std::string& path, const json& body,
                  const std::function<std::string(const json&)>& format) {
  Result<ApiClient> client = ApiClient::open(options);
  if (!client.is_ok()) return fail(client.status());
  Result<json> reply = client->post_json(path, body);
  if (!reply.is_ok()) return fail(reply.status());
  std::cout << (options.json ? reply->dump(2) + "\n" : format(*reply)) << std::flush;
  return kExitOk;
}

std::string instances_table(const json& doc) {
  std::string out = "NAME                 STATE      STRATEGY  COORDINATOR      RANKS  MODEL\n";
  char line[512];
  for (const auto& i : doc.value("instances", json::array())) {
    std::snprintf(line, sizeof line, "%-20s %-10s %-9s %-16s %5zu  %s\n", i.value("name", "").c_str(),
                  i.value("state", "").c_str(), i.value("strategy", "").c_str(), i.value("coordinator", "").c_str(),
                  i.value("ranks", json::array()).size(), i.value("model_path", "").c_str());
    out += line;
    if (i.value("state", "") == "loading") {
      std::string progress;
      for (const auto& r : i.value("ranks", json::array())) {
        progress += (progress.empty() ? "" : ", ") + r.value("node", "?") + " " +
                    std::to_string(static_cast<int>(100 * r.value("progress", 0.0))) + "%";
      }
      out += "  loading: " + progress + "\n";
    }
    if (i.contains("error") && i["error"].is_string()) out += "  error: " + i["error"].get<std::string>() + "\n";
  }
  return doc.value("instances", json::array()).empty() ? "no models loaded\n" : out;
}

std::string plan_table(const json& plan) {
  std::string out = "strategy: " + plan.value("strategy", "?") + "\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-5s %-16s %-9s %-15s %-15s %-9s %10s\n", "RANK", "NODE", "KV HEADS", "FFN COLUMNS",
                "VOCAB ROWS", "LAYERS", "MEMORY");
  out += line;
  for (const auto& r : plan.value("ranks", json::array())) {
    auto range = [&](const char* key) {
      const json& v = r.value(key, json::array({0, 0}));
      return std::to_string(v[0].get<int64_t>()) + "-" + std::to_string(v[1].get<int64_t>());
    };
    std::snprintf(line, sizeof line, "%-5d %-16s %-9s %-15s %-15s %-9s %10s\n", r.value("rank", 0),
                  r.value("node", "").c_str(), range("kv_heads").c_str(), range("ffn_columns").c_str(),
                  range("vocab_rows").c_str(), range("layers").c_str(),
                  format_bytes(r.value("memory_bytes", uint64_t{0})).c_str());
    out += line;
  }
  for (const auto& note : plan.value("notes", json::array())) out += "note: " + note.get<std::string>() + "\n";
  return out;
}

struct LoadOptions {
  std::string path, name, strategy = "auto", nodes;
  int ctx = 4096;
  bool dry_run = false;
};

struct InferOptions {
  std::string model, prompt;
  int max_tokens = 128;
  double temperature = 0.8;
  int64_t seed = -1;
  bool stream = false;
};

struct ChatOptions {
  std::string model, system;
  int max_tokens = 512;
  double temperature = 0.8;
};

void print_timing(const json& usage) {
  const json& t = usage.value("timings", json::object());
  std::fprintf(stderr, "[%d prompt + %d generated tokens, %.1f tokens/s]\n", usage.value("prompt_tokens", 0),
               usage.value("completion_tokens", 0), t.value("tokens_per_second", 0.0));
}

// Streams /v1/completions to stdout as the text arrives.
int infer_stream(const GlobalOptions& options, const InferOptions& o) {
  Result<ApiClient> client = ApiClient::open(options);
  if (!client.is_ok()) return fail(client.status());
  json body = {{"model", o.model},
               {"prompt", o.prompt},
               {"max_tokens", o.max_tokens},
               {"temperature", o.temperature},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}}};
  if (o.seed >= 0) body["seed"] = o.seed;
  json usage;
  Status s = client->post_stream("/v1/completions", body, [&](const json& chunk) {
    if (chunk.contains("usage") && chunk["usage"].is_object()) usage = chunk["usage"];
    for (const auto& c : chunk.value("choices", json::array())) std::cout << c.value("text", "") << std::flush;
  });
  if (!s.is_ok()) return fail(s);
  std::cout << std::endl;  // flushed before the timing line on stderr
  if (usage.is_object()) print_timing(usage);
  return kExitOk;
}

// An interactive chat: one user message per line, replies streamed, history kept.
int chat(const GlobalOptions& options, const ChatOptions& o) {
  Result<ApiClient> client = ApiClient::open(options);
  if (!client.is_ok()) return fail(client.status());
  const bool terminal = isatty(STDIN_FILENO);
  json history = json::array();
  if (!o.system.empty()) history.push_back({{"role", "system"}, {"content", o.system}});
  const json fresh = history;
  if (terminal) std::cout << "chatting with " << o.model << "; /reset clears the history, /exit ends\n";
  std::string line;
  while ((terminal ? (std::cout << "> " << std::flush) : std::cout), std::getline(std::cin, line)) {
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      history = fresh;
      if (terminal) std::cout << "(history cleared)\n";
      continue;
    }
    if (line.empty()) continue;
    history.push_back({{"role", "user"}, {"content", line}});
    json body = {{"model", o.model},
                 {"messages", history},
                 {"max_tokens", o.max_tokens},
                 {"temperature", o.temperature},
                 {"stream", true}};
    std::string reply;
    Status s = client->post_stream("/v1/chat/completions", body, [&](const json& chunk) {
      for (const auto& c : chunk.value("choices", json::array())) {
        const json& delta = c.value("delta", json::object());
        if (delta.contains("content") && delta["content"].is_string()) {
          reply += delta["content"].get<std::string>();
          std::cout << delta["content"].get<std::string>() << std::flush;
        }
      }
    });
    std::cout << "\n";
    if (!s.is_ok()) return fail(s);
    history.push_back({{"role", "assistant"}, {"content", reply}});
  }
  return kExitOk;
}

void add_model_commands(CLI::App& app, const GlobalOptions& options, Command& chosen) {
  auto* model = app.add_subcommand("model", "load, unload and list models served by the cluster");
  model->require_subcommand(1);
  auto load = std::make_shared<LoadOptions>();
  auto* l = model->add_subcommand("load", "split a GGUF model over the cluster and serve it");
  l->add_option("path", load->path, "GGUF file (the same path on every node)")->required();
  l->add_option("--name", load->name, "instance name (default: the file name)");
  l->add_option("--strategy", load->strategy, "auto, tensor or pipeline")->capture_default_str();
  l->add_option("--nodes", load->nodes, "comma-separated node names (default: all alive)");
  l->add_option("--ctx", load->ctx, "context length per sequence")->capture_default_str();
  l->add_flag("--dry-run", load->dry_run, "print the plan, load nothing");
  l->callback([&options, &chosen, load] {
    chosen = [&options, load] {
      json body = {{"model", load->path}, {"strategy", load->strategy}, {"ctx", load->ctx}, {"dry_run", load->dry_run}};
      if (!load->name.empty()) body["name"] = load->name;
      if (!load->nodes.empty()) {
        json nodes = json::array();
        std::stringstream ss(load->nodes);
        for (std::string n; std::getline(ss, n, ',');) nodes.push_back(n);
        body["nodes"] = nodes;
      }
      return post_and_show(options, "/v1/models/load", body, [](const json& r) {
        if (r.contains("text")) return r["text"].get<std::string>();
        return "loaded " + r.value("name", "") + " (" + r.value("state", "") + ")\n" +
               plan_table(r.value("plan", json::object()));
      });
    };
  });
  auto name = std::make_shared<std::string>();
  auto* u = model->add_subcommand("unload", "stop serving a model and free its memory on every node");
  u->add_option("name", *name, "instance name")->required();
  u->callback([&options, &chosen, name] {
    chosen = [&options, name] {
      return post_and_show(options, "/v1/models/unload", {{"name", *name}},
                           [](const json& r) { return "unloaded " + r.value("name", "") + "\n"; });
    };
  });
  auto* list = model->add_subcommand("list", "the loaded models");
  list->callback([&options, &chosen] {
    chosen = [&options] {
      return show_once(options, "/v1/instances",
                       [](const json& d) -> Result<std::string> { return instances_table(d); });
    };
  });
  auto detail = std::make_shared<bool>(false);
  auto* status = model->add_subcommand("status", "the loaded models with their state and, with --detail, plans");
  status->add_flag("--detail", *detail, "show each instance's shard plan");
  status->callback([&options, &chosen, detail] {
    chosen = [&options, detail] {
      Formatter f = *detail ? [](const json& d) -> Result<std::string> {
        std::string out = instances_table(d);
        for (const auto& i : d.value("instances", json::array())) {
          out += "\n" + i.value("name", "") + ":\n" + plan_table(i.value("plan", json::object()));
        }
        return out;
      }
      : [](const json& d) -> Result<std::string> { return instances_table(d); };
      return show_once(options, "/v1/instances", f);
    };
  });
}

void add_infer_command(CLI::App& app, const GlobalOptions& options, Command& chosen) {
  auto o = std::make_shared<InferOptions>();
  auto* cmd = app.add_subcommand("infer", "generate text with a loaded model");
  cmd->add_option("model", o->model, "instance name")->required();
  cmd->add_option("--prompt,-p", o->prompt, "the prompt")->required();
  cmd->add_option("--max-tokens,-n", o->max_tokens)->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "0 is greedy")->capture_default_str();
  cmd->add_option("--seed", o->seed, "random seed (same seed, same text)");
  cmd->add_flag("--stream", o->stream, "print tokens as they arrive");
  cmd->callback([&options, &chosen, o] {
    chosen = [&options, o] {
      if (o->stream) return infer_stream(options, *o);
      json body = {
          {"model", o->model}, {"prompt", o->prompt}, {"max_tokens", o->max_tokens}, {"temperature", o->temperature}};
      if (o->seed >= 0) body["seed"] = o->seed;
      return post_and_show(options, "/v1/inference", body, [](const json& r) {
        const json& t = r.value("timings", json::object());
        std::fprintf(stderr, "[%d prompt + %d generated tokens, %.1f tokens/s]\n", r["usage"].value("prompt_tokens", 0),
                     r["usage"].value("completion_tokens", 0), t.value("tokens_per_second", 0.0));
        return r.value("text", "") + "\n";
      });
    };
  });
}

void add_chat_command(CLI::App& app, const GlobalOptions& options, Command& chosen) {
  auto o = std::make_shared<ChatOptions>();
  auto* cmd = app.add_subcommand("chat", "chat with a loaded model in the terminal (one message per line)");
  cmd->add_option("model", o->model, "instance name")->required();
  cmd->add_option("--system", o->system, "system message");
  cmd->add_option("--max-tokens,-n", o->max_tokens)->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "0 is greedy")->capture_default_str();
  cmd->callback([&options, &chosen, o] { chosen = [&options, o] { return chat(options, *o); }; });
}

void add_global_options(CLI::App& app, GlobalOptions& options) {
  app.add_option("--server", options.server, "clusterd node to talk to, http://host:port")
      ->capture_default_str()
      ->envname("CLUSTERCTL_SERVER")
      ->check([](const std::string& text) {
        Result<ServerUrl> url = parse_server_url(text);
        if (url.is_ok()) return std::string();
        // CLI11 already starts the line with "--server: ".
        std::string message = url.status().message();
        return message.rfind("--server ", 0) == 0 ? message.substr(9) : message;
      });
  app.add_option("--token", options.token, "API token, sent as 'Authorization: Bearer'")
      ->envname("CLUSTERCTL_TOKEN")
      ->check([](const std::string& token) {
        for (unsigned char c : token) {
          if (c < 0x21 || c == 0x7F) {
            return std::string(
                "the token contains a space, newline or control character; "
                "pass the token itself");
          }
        }
        return std::string();
      });
  app.add_flag("--json", options.json, "print the server's JSON document instead of a table");
}

void add_devices_commands(CLI::App& app, const GlobalOptions& options, Command& chosen) {
  CLI::App* devices = app.add_subcommand("devices", "machines in the cluster and their hardware");
  devices->require_subcommand(1);
  CLI::App* list = devices->add_subcommand("list", "list every node: cores, memory, accelerators, RDMA");
  list->callback(
      [&options, &chosen] { chosen = [&options] { return show_once(options, "/v1/devices", format_devices); }; });
}

void add_cluster_commands(CLI::App& app, const GlobalOptions& options, Command& chosen) {
  CLI::App* cluster = app.add_subcommand("cluster", "the cluster as a whole");
  cluster->require_subcommand(1);
  CLI::App* status = cluster->add_subcommand("status", "health, nodes and the links between them");
  status->add_flag("--watch,-w")->description("redraw every second until Ctrl-C");
  status->callback([&options, &chosen, status] {
    bool repeat = status->count("--watch") > 0;
    chosen = [&options, repeat] {
      return repeat ? watch(options, "/v1/cluster", format_cluster_status)
                    : show_once(options, "/v1/cluster", format_cluster_status);
    };
  });
}

}  // namespace
}  // namespace clusterctl

int main(int argc, char** argv) {
  using namespace clusterctl;
  CLI::App app{"clusterctl: drive a clusterd cluster through a node's HTTP API", "clusterctl"};
  app.fallthrough();  // global options may follow the subcommand: `devices list --json`
  app.set_version_flag("--version", std::string("clusterctl ") + CLUSTERD_VERSION);
  app.require_subcommand(1);

  GlobalOptions options;
  Command chosen;
  add_global_options(app, options);
  add_devices_commands(app, options, chosen);
  add_cluster_commands(app, options, chosen);
  add_model_commands(app, options, chosen);
  add_infer_command(app, options, chosen);
  add_chat_command(app, options, chosen);
  add_bench_command(app, options, chosen);

  CLI11_PARSE(app, argc, argv);
  return chosen ? chosen() : kExitFailed;
}
