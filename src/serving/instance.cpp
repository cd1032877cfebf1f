#include "clusterd/serving/instance.h"

#include <spdlog/spdlog.h>

#include <thread>

namespace clusterd {

nlohmann::json shard_to_json(const Shard& s) {
  return {{"kv_heads", {s.kv_head_begin, s.kv_head_end}},
          {"ffn_columns", {s.ffn_begin, s.ffn_end}},
          {"vocab_rows", {s.vocab_begin, s.vocab_end}},
          {"layers", {s.layer_begin, s.layer_end}},
          {"embeds", s.embeds},
          {"outputs", s.outputs}};
}

Result<Shard> shard_from_json(const nlohmann::json& d) {
  auto pair = [&](const char* key, int64_t& a, int64_t& b) {
    auto it = d.find(key);
    if (it == d.end() || !it->is_array() || it->size() != 2 || !(*it)[0].is_number_integer() ||
        !(*it)[1].is_number_integer()) {
      return false;
    }
    a = (*it)[0].get<int64_t>();
    b = (*it)[1].get<int64_t>();
    return true;
  };
  Shard s;
  int64_t kv0, kv1, l0, l1;
  if (!d.is_object() || !pair("kv_heads", kv0, kv1) || !pair("ffn_columns", s.ffn_begin, s.ffn_end) ||
      !pair("vocab_rows", s.vocab_begin, s.vocab_end) || !pair("layers", l0, l1)) {
    return invalid_argument("shard: kv_heads, ffn_columns, vocab_rows and layers must be [begin, end] pairs");
  }
  s.kv_head_begin = static_cast<int>(kv0);
  s.kv_head_end = static_cast<int>(kv1);
  s.layer_begin = static_cast<int>(l0);
  s.layer_end = static_cast<int>(l1);
  s.embeds = d.value("embeds", true);
  s.outputs = d.value("outputs", true);
  return s;
}

nlohmann::json InstanceSpec::to_json() const {
  nlohmann::json m = nlohmann::json::array();
  for (const auto& g : members) m.push_back({{"host", g.host}, {"port", g.port}, {"name", g.name}});
  nlohmann::json d = {
      {"name", name},       {"model_path", model_path},      {"epoch", epoch}, {"rank", rank},
      {"members", m},       {"shard", shard_to_json(shard)}, {"ctx", ctx},     {"max_sequences", max_sequences},
      {"threads", threads}, {"deadline_ms", deadline_ms},    {"plan", plan}};
  if (!model_sha256.empty()) {
    d["model_sha256"] = model_sha256;
    d["manifest_sha256"] = manifest_sha256;
    d["slice_port"] = slice_port;
  }
  return d;
}

Result<InstanceSpec> InstanceSpec::from_json(const nlohmann::json& d) {
  try {
    InstanceSpec s;
    s.name = d.at("name").get<std::string>();
    s.model_path = d.at("model_path").get<std::string>();
    s.epoch = d.at("epoch").get<uint64_t>();
    s.rank = d.at("rank").get<int>();
    for (const auto& m : d.at("members")) {
      s.members.push_back({m.at("host").get<std::string>(), m.at("port").get<uint16_t>(), m.value("name", "")});
    }
    auto shard = shard_from_json(d.at("shard"));
    if (!shard.is_ok()) return shard.status();
    s.shard = *shard;
    s.ctx = d.value("ctx", 4096);
    s.max_sequences = d.value("max_sequences", 4);
    s.threads = d.value("threads", 0);
    s.deadline_ms = d.value("deadline_ms", 5000);
    s.plan = d.value("plan", nlohmann::json::object());
    s.model_sha256 = d.value("model_sha256", "");
    s.manifest_sha256 = d.value("manifest_sha256", "");
    s.slice_port = d.value("slice_port", uint16_t{0});
    auto is_digest = [](const std::string& h) {
      return h.size() == 64 && h.find_first_not_of("0123456789abcdef") == std::string::npos;
    };
    if (!s.model_sha256.empty() && (!is_digest(s.model_sha256) || !is_digest(s.manifest_sha256) || s.slice_port == 0)) {
      return invalid_argument(
          "instance spec: model_sha256 and manifest_sha256 must be 64 hex digits, with a slice_port");
    }
    if (s.rank < 0 || s.rank >= static_cast<int>(s.members.size()) || s.ctx < 1 || s.ctx > (1 << 20) ||
        s.max_sequences < 1 || s.max_sequences > 1024) {
      return invalid_argument("instance spec: rank, ctx or max_sequences out of range");
    }
    return s;
  } catch (const std::exception& e) {
    return invalid_argument(std::string("instance spec: ") + e.what());
  }
}

Result<std::unique_ptr<ModelInstance>> ModelInstance::load(const InstanceSpec& spec, const std::string& key,
                                                           DataListener& listener, InstanceLoadOptions options) {
  auto inst = std::unique_ptr<ModelInstance>(new ModelInstance());
  inst->spec_ = spec;
  if (options.model) {
    inst->model_ = std::move(options.model);
  } else {
    auto model = Model::open(spec.model_path);
    if (!model.is_ok()) return model.status();
    inst->model_ = std::move(*model);
  }
  auto weights = load_weights(*inst->model_->file, inst->model_->params, spec.shard);
  if (!weights.is_ok()) return weights.status();
  inst->weights_ = std::move(*weights);
  for (const auto& note : inst->weights_.load_notes) spdlog::info("instance {}: {}", spec.name, note);
  if (inst->weights_.packed_bytes > 0) {
    spdlog::info("instance {}: {:.1f} MiB of Q8_0/Q4_0/Q4_K/Q5_K/Q6_K weights packed for AVX-512 VNNI products",
                 spec.name, inst->weights_.packed_bytes / double(1 << 20));
  }
  GroupOptions o;
  o.key = key;
  o.epoch = spec.epoch;
  o.rank = spec.rank;
  o.members = spec.members;
  o.deadline_ms = spec.deadline_ms;
  o.connect_timeout_ms = options.connect_timeout_ms;
  o.check = std::move(options.check);
  auto group = Group::form(o, listener);
  if (!group.is_ok()) return group.status();
  inst->group_ = std::move(*group);
  const int threads = options.threads > 0 ? options.threads
                      : spec.threads > 0  ? spec.threads
                                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  inst->runner_ = std::make_unique<GroupRunner>(
      *inst->group_, inst->weights_, TransformerOptions{spec.ctx, spec.max_sequences, TensorType::kF16, threads});
  if (spec.rank != 0) {
    ModelInstance* self = inst.get();
    inst->follower_ = std::thread([self] {
      Status s = self->runner_->follow();
      if (s.is_ok()) {
        std::lock_guard lock(self->state_mu_);
        self->state_ = "unloaded";
      } else {
        spdlog::warn("instance {}: rank {} stopped: {}", self->spec_.name, self->spec_.rank, s.message());
        self->set_failed(s.message());
      }
    });
  }
  return inst;
}

ModelInstance::~ModelInstance() {
  if (group_) group_->close();  // a follower blocked in the group returns with an error
  if (follower_.joinable()) follower_.join();
  // A request thread may still hold the scheduler; its thread must stop before the
  // runner it drives goes away.
  stop_scheduler();
}

std::string ModelInstance::state() const {
  std::lock_guard lock(state_mu_);
  return state_;
}

std::string ModelInstance::error() const {
  std::lock_guard lock(state_mu_);
  return error_;
}

void ModelInstance::set_failed(const std::string& error) {
  std::lock_guard lock(state_mu_);
  if (state_ == "ready") {
    state_ = "failed";
    error_ = error;
  }
}

void ModelInstance::start_scheduler(SchedulerOptions options) {
  std::lock_guard lock(scheduler_mu_);
  if (scheduler_ || unloading_ || spec_.rank != 0) return;
  options.max_sequences = std::min(options.max_sequences, spec_.max_sequences);
  scheduler_ = std::make_shared<Scheduler>(*runner_, *model_->tokenizer, options, [this](const Status& s) {
    if (group_->broken()) set_failed(s.message());
  });
}

Result<ModelInstance::PendingGeneration> ModelInstance::submit(const GenerateRequest& request) {
  if (spec_.rank != 0) return invalid_argument("instance " + spec_.name + " is coordinated by rank 0");
  if (state() != "ready") return unavailable("instance " + spec_.name + " is " + state() + ": " + error());
  start_scheduler(SchedulerOptions{});
  std::shared_ptr<Scheduler> scheduler;
  {
    std::lock_guard lock(scheduler_mu_);
    scheduler = scheduler_;
  }
  if (scheduler == nullptr) return unavailable("instance " + spec_.name + " is being unloaded");
  auto ticket = scheduler->submit(request);
  if (!ticket.is_ok()) return ticket.status();
  return PendingGeneration{std::move(scheduler), std::move(*ticket)};
}

Result<GenerateResult> ModelInstance::generate(const GenerateRequest& request,
                                               const std::function<bool(std::string_view)>& on_text) {
  auto pending = submit(request);
  if (!pending.is_ok()) return pending.status();
  return pending->wait(on_text);
}

void ModelInstance::stop_scheduler() {
  std::shared_ptr<Scheduler> scheduler;
  {
    std::lock_guard lock(scheduler_mu_);
    unloading_ = true;
    scheduler = scheduler_;
  }
  if (scheduler) scheduler->stop();
}

ServingStats ModelInstance::serving_stats() const {
  std::lock_guard lock(scheduler_mu_);
  return scheduler_ ? scheduler_->stats() : ServingStats{};
}

void ModelInstance::unload() {
  if (spec_.rank == 0) {
    std::shared_ptr<Scheduler> scheduler;
    {
      std::lock_guard lock(scheduler_mu_);
      unloading_ = true;  // no new scheduler may start on this runner
      scheduler = std::move(scheduler_);
    }
    if (scheduler) scheduler->stop();  // fails what is queued, waits for the step in flight
    if (state() == "ready") (void)runner_->finish();
    group_->close();
  } else if (follower_.joinable()) {
    follower_.join();
  }
  std::lock_guard lock(state_mu_);
  state_ = "unloaded";
}

}  // namespace clusterd
