#include "clusterd/engine/synth.h"

#include <random>

#include "clusterd/engine/quant.h"
#include "clusterd/model/model_params.h"

namespace clusterd {

namespace {

class RandomTensors {
 public:
  explicit RandomTensors(uint64_t seed) : rng_(seed) {}

  // N(mean, sd^2) values quantized row by row to `type`.
  std::vector<uint8_t> make(TensorType type, int64_t ne0, int64_t ne1, float mean, float sd) {
    std::normal_distribution<float> dist(mean, sd);
    const size_t row_bytes = tensor_row_bytes(type, ne0);
    std::vector<uint8_t> out(row_bytes * ne1);
    std::vector<float> row(ne0);
    for (int64_t r = 0; r < ne1; ++r) {
      for (auto& v : row) v = dist(rng_);
      (void)quantize_row(type, row.data(), out.data() + r * row_bytes, ne0);
    }
    return out;
  }

 private:
  std::mt19937_64 rng_;
};

// The requested type where the row length fits its blocks, else Q8_0, else F16.
TensorType fitting_type(TensorType wanted, int64_t ne0, const std::string& name, std::string* notes) {
  auto fits = [&](TensorType t) { return ne0 % quant_block_size(t) == 0; };
  if (fits(wanted)) return wanted;
  TensorType fallback = fits(TensorType::kQ8_0) ? TensorType::kQ8_0 : TensorType::kF16;
  if (notes) {
    *notes += name + ": rows of " + std::to_string(ne0) + " do not fit " + std::string(tensor_type_name(wanted)) +
              " blocks; stored as " + std::string(tensor_type_name(fallback)) + "\n";
  }
  return fallback;
}

void made_up_vocabulary(GgufWriter& w, int n_vocab) {
  // <unk> <s> </s>, the 256 byte tokens, then filler pieces: any text encodes (bytes).
  std::vector<GgufValue> tokens, scores, types;
  auto add = [&](std::string text, float score, int32_t type) {
    tokens.push_back(GgufValue::str(std::move(text)));
    scores.push_back(GgufValue::f32(score));
    types.push_back(GgufValue::i32(type));
  };
  add("<unk>", 0, 2);
  add("<s>", 0, 3);
  add("</s>", 0, 3);
  static const char* kHex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) add(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">", 0, 6);
  for (int i = static_cast<int>(tokens.size()); i < n_vocab; ++i) add("\xE2\x96\x81t" + std::to_string(i), -i, 1);
  w.set("tokenizer.ggml.model", GgufValue::str("llama"));
  w.set("tokenizer.ggml.tokens", GgufValue::array(GgufValueType::kString, std::move(tokens)));
  w.set("tokenizer.ggml.scores", GgufValue::array(GgufValueType::kFloat32, std::move(scores)));
  w.set("tokenizer.ggml.token_type", GgufValue::array(GgufValueType::kInt32, std::move(types)));
  w.set("tokenizer.ggml.unknown_token_id", GgufValue::u32(0));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(1));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(2));
  w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(true));
}

}  // namespace

Status synthesize_model(const SynthOptions& o, const std::filesystem::path& path, std::string* notes) {
  if (o.arch != "llama" && o.arch != "qwen2" && o.arch != "qwen3") {
    return invalid_argument("synth: architecture '" + o.arch + "' is not supported (supported: " +
                            supported_architectures() + ")");
  }
  if (o.n_embd <= 0 || o.n_layer <= 0 || o.n_head <= 0 || o.n_head_kv <= 0 || o.n_ff <= 0) {
    return invalid_argument("synth: --n-embd, --n-layer, --n-head, --n-head-kv and --n-ff must be positive");
  }
  if (o.n_head % o.n_head_kv != 0) return invalid_argument("synth: --n-head must be a multiple of --n-head-kv");
  const int hd = o.head_dim > 0 ? o.head_dim : o.n_embd / o.n_head;
  if (hd <= 0 || hd % 2 != 0) return invalid_argument("synth: the head size must be even and positive");
  if (!quant_type_supported(o.type) || o.type == TensorType::kQ8_K) {
    return invalid_argument("synth: type " + std::string(tensor_type_name(o.type)) + " is not supported");
  }

  GgufWriter w;
  int n_vocab = o.n_vocab;
  const std::string& a = o.arch;
  w.set("general.architecture", GgufValue::str(a));
  w.set("general.name", GgufValue::str("synthetic " + a + " e" + std::to_string(o.n_embd) + " l" +
                                       std::to_string(o.n_layer) + " (random weights)"));
  w.set(a + ".context_length", GgufValue::u32(o.n_ctx));
  w.set(a + ".embedding_length", GgufValue::u32(o.n_embd));
  w.set(a + ".block_count", GgufValue::u32(o.n_layer));
  w.set(a + ".feed_forward_length", GgufValue::u32(o.n_ff));
  w.set(a + ".attention.head_count", GgufValue::u32(o.n_head));
  w.set(a + ".attention.head_count_kv", GgufValue::u32(o.n_head_kv));
  w.set(a + ".attention.key_length", GgufValue::u32(hd));
  w.set(a + ".attention.value_length", GgufValue::u32(hd));
  w.set(a + ".rope.dimension_count", GgufValue::u32(hd));
  w.set(a + ".rope.freq_base", GgufValue::f32(a == "llama" ? 500000.0f : 1000000.0f));
  w.set(a + ".attention.layer_norm_rms_epsilon", GgufValue::f32(1e-5f));
  if (!o.like.empty()) {
    auto like = GgufFile::open(o.like);
    if (!like.is_ok()) return like.status();
    for (const auto& [key, value] : (*like)->metadata()) {
      if (key.rfind("tokenizer.", 0) == 0) w.set(key, value);
    }
    const GgufValue* tokens = (*like)->find("tokenizer.ggml.tokens");
    if (!tokens || !tokens->as_array()) return invalid_argument("synth: " + o.like.string() + " has no tokenizer");
    n_vocab = static_cast<int>(tokens->as_array()->size());
  } else {
    if (n_vocab < 259 + 1) return invalid_argument("synth: --vocab must be at least 260 (3 special and 256 byte tokens)");
    made_up_vocabulary(w, n_vocab);
  }
  w.set(a + ".vocab_size", GgufValue::u32(n_vocab));

  RandomTensors rnd(o.seed);
  Status status;
  auto matrix = [&](const std::string& name, int64_t ne0, int64_t ne1) {
    TensorType t = fitting_type(o.type, ne0, name, notes);
    if (status.is_ok()) status = w.add_tensor(name, t, {ne0, ne1}, rnd.make(t, ne0, ne1, 0.0f, 0.08f));
  };
  auto vector = [&](const std::string& name, int64_t n, float mean, float sd) {
    if (status.is_ok()) status = w.add_tensor(name, TensorType::kF32, {n}, rnd.make(TensorType::kF32, n, 1, mean, sd));
  };
  const int64_t q = static_cast<int64_t>(o.n_head) * hd, kv = static_cast<int64_t>(o.n_head_kv) * hd;
  matrix("token_embd.weight", o.n_embd, n_vocab);
  vector("output_norm.weight", o.n_embd, 1.0f, 0.1f);
  if (!o.tied_embeddings) matrix("output.weight", o.n_embd, n_vocab);
  for (int l = 0; l < o.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    vector(b + "attn_norm.weight", o.n_embd, 1.0f, 0.1f);
    matrix(b + "attn_q.weight", o.n_embd, q);
    matrix(b + "attn_k.weight", o.n_embd, kv);
    matrix(b + "attn_v.weight", o.n_embd, kv);
    if (a == "qwen2") {
      vector(b + "attn_q.bias", q, 0.0f, 0.08f);
      vector(b + "attn_k.bias", kv, 0.0f, 0.08f);
      vector(b + "attn_v.bias", kv, 0.0f, 0.08f);
    }
    if (a == "qwen3") {
      vector(b + "attn_q_norm.weight", hd, 1.0f, 0.1f);
      vector(b + "attn_k_norm.weight", hd, 1.0f, 0.1f);
    }
    matrix(b + "attn_output.weight", q, o.n_embd);
    vector(b + "ffn_norm.weight", o.n_embd, 1.0f, 0.1f);
    matrix(b + "ffn_gate.weight", o.n_embd, o.n_ff);
    matrix(b + "ffn_up.weight", o.n_embd, o.n_ff);
    matrix(b + "ffn_down.weight", o.n_ff, o.n_embd);
  }
  if (!status.is_ok()) return status;
  return w.write(path);
}

}  // namespace clusterd
