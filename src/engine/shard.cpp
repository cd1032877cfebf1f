#include "clusterd/engine/shard.h"

#include <string>

namespace clusterd {

Shard Shard::whole(const ModelParams& p) {
  Shard s;
  s.kv_head_end = p.n_head_kv;
  s.ffn_end = p.n_ff;
  s.vocab_end = p.n_vocab;
  s.layer_end = p.n_layer;
  return s;
}

Status validate_shard(const Shard& s, const ModelParams& p) {
  auto bad = [](const std::string& what) { return invalid_argument("shard: " + what); };
  if (s.kv_head_begin < 0 || s.kv_head_end > p.n_head_kv || s.kv_head_begin >= s.kv_head_end) {
    return bad("KV heads [" + std::to_string(s.kv_head_begin) + ", " + std::to_string(s.kv_head_end) +
               ") outside 0.." + std::to_string(p.n_head_kv));
  }
  if (s.ffn_begin < 0 || s.ffn_end > p.n_ff || s.ffn_begin >= s.ffn_end) {
    return bad("FFN columns [" + std::to_string(s.ffn_begin) + ", " + std::to_string(s.ffn_end) + ") outside 0.." +
               std::to_string(p.n_ff));
  }
  if (s.outputs && (s.vocab_begin < 0 || s.vocab_end > p.n_vocab || s.vocab_begin >= s.vocab_end)) {
    return bad("vocab rows [" + std::to_string(s.vocab_begin) + ", " + std::to_string(s.vocab_end) +
               ") outside 0.." + std::to_string(p.n_vocab));
  }
  if (s.layer_begin < 0 || s.layer_end > p.n_layer || s.layer_begin > s.layer_end) {
    return bad("layers [" + std::to_string(s.layer_begin) + ", " + std::to_string(s.layer_end) + ") outside 0.." +
               std::to_string(p.n_layer));
  }
  return Status::ok();
}

}  // namespace clusterd
