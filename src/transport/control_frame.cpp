#include "clusterd/transport/control_frame.h"

#include <vector>

#include "clusterd/common/crypto.h"

namespace clusterd {

std::string encode_control_frame(const nlohmann::json& message) {
  std::string payload = message.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  uint32_t n = static_cast<uint32_t>(payload.size());
  std::string frame;
  frame.reserve(4 + payload.size());
  frame.push_back(static_cast<char>(n >> 24));
  frame.push_back(static_cast<char>(n >> 16));
  frame.push_back(static_cast<char>(n >> 8));
  frame.push_back(static_cast<char>(n));
  frame += payload;
  return frame;
}

Result<uint32_t> decode_control_frame_length(std::span<const uint8_t, 4> h, uint32_t max_bytes) {
  uint32_t n = (uint32_t{h[0]} << 24) | (uint32_t{h[1]} << 16) | (uint32_t{h[2]} << 8) | uint32_t{h[3]};
  if (n == 0) return invalid_argument("empty control frame");
  if (n > max_bytes) {
    return invalid_argument("control frame of " + std::to_string(n) + " bytes exceeds the limit of " +
                            std::to_string(max_bytes));
  }
  return n;
}

Result<nlohmann::json> decode_control_message(std::string_view payload) {
  nlohmann::json doc = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return invalid_argument("control frame is not valid JSON");
  if (!doc.is_object()) return invalid_argument("control frame is not a JSON object");
  auto it = doc.find("type");
  if (it == doc.end() || !it->is_string()) return invalid_argument("control frame has no string 'type'");
  return doc;
}

nlohmann::json hello_message(const Hello& h) {
  return {{"type", "hello"},      {"version", h.version}, {"cluster_id", h.cluster_id},
          {"node_id", h.node_id}, {"name", h.name},       {"nonce", h.nonce}};
}

Result<Hello> parse_hello(const nlohmann::json& m, const std::string& expected_cluster_id) {
  auto text = [&](const char* key, std::string& out) {
    auto it = m.find(key);
    if (it == m.end() || !it->is_string()) return false;
    out = it->get<std::string>();
    return true;
  };
  if (m.value("type", "") != "hello") return invalid_argument("peer did not start with a hello");
  Hello h;
  auto v = m.find("version");
  if (v == m.end() || !v->is_number_unsigned()) return invalid_argument("hello without a version");
  uint64_t version = v->get<uint64_t>();
  if (version != kControlProtocolVersion) {
    return invalid_argument("peer speaks control protocol version " + std::to_string(version) + ", this node " +
                            std::to_string(kControlProtocolVersion) + "; run the same clusterd release on both");
  }
  h.version = static_cast<uint32_t>(version);
  if (!text("cluster_id", h.cluster_id) || !text("node_id", h.node_id) || !text("nonce", h.nonce)) {
    return invalid_argument("hello is missing cluster_id, node_id or nonce");
  }
  text("name", h.name);
  if (h.name.size() > 63) h.name.resize(63);
  if (h.cluster_id != expected_cluster_id) {
    return permission_denied("peer belongs to cluster " + h.cluster_id.substr(0, 16) + ", not " + expected_cluster_id +
                             " (a different cluster key)");
  }
  if (!is_uuid(h.node_id)) return invalid_argument("hello node_id is not a UUID");
  std::vector<uint8_t> nonce;
  if (h.nonce.size() != 64 || !from_hex(h.nonce, nonce)) return invalid_argument("hello nonce is not 64 hex digits");
  return h;
}

static std::string proof_for(std::string_view key, const Hello& prover, const Hello& verifier) {
  std::string msg =
      "clusterd control auth v1|" + verifier.nonce + "|" + prover.nonce + "|" + prover.node_id + "|" + verifier.node_id;
  return to_hex(hmac_sha256(key, msg));
}

std::string auth_proof(std::string_view key, const Hello& own, const Hello& peer) { return proof_for(key, own, peer); }

bool verify_auth_proof(std::string_view key, const Hello& own, const Hello& peer, std::string_view proof) {
  std::string expected = proof_for(key, peer, own);
  return constant_time_equal(std::span(reinterpret_cast<const uint8_t*>(expected.data()), expected.size()),
                             std::span(reinterpret_cast<const uint8_t*>(proof.data()), proof.size()));
}

}  // namespace clusterd
