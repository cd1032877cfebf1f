// Control-link frames and the handshake's proofs, as pure functions (the socket code
// in control_link.cpp uses them; tests check them without sockets).
// A frame is a 4-byte big-endian payload length, then a JSON object with a "type".
// Handshake (docs/wire-formats.md): both sides send
//   {"type":"hello","version":1,"cluster_id","node_id","name","nonce":64 hex}
// then {"type":"auth","proof":hex(HMAC(key, "clusterd control auth v1|" + peer_nonce +
//   "|" + own_nonce + "|" + own_id + "|" + peer_id))}; nothing else is read before both
// proofs check out.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>

#include "clusterd/common/status.h"

namespace clusterd {

constexpr uint32_t kControlProtocolVersion = 1;
constexpr uint32_t kMaxControlFrameBytes = 1u << 20;

// Header + payload, ready to write.
std::string encode_control_frame(const nlohmann::json& message);
// Reads the 4-byte header; rejects lengths of 0 or above `max_bytes`.
Result<uint32_t> decode_control_frame_length(std::span<const uint8_t, 4> header, uint32_t max_bytes);
// Parses a payload: a JSON object with a string "type". Never throws.
Result<nlohmann::json> decode_control_message(std::string_view payload);

struct Hello {
  uint32_t version = kControlProtocolVersion;
  std::string cluster_id;
  std::string node_id;
  std::string name;
  std::string nonce;  // 64 hex characters, fresh per connection
};
nlohmann::json hello_message(const Hello& hello);
// Checks the fields and the cluster id; errors say what is wrong with the peer.
Result<Hello> parse_hello(const nlohmann::json& message, const std::string& expected_cluster_id);

// The proof this side sends.
std::string auth_proof(std::string_view key, const Hello& own, const Hello& peer);
// True when `proof` is what `peer` must send to prove it holds `key`.
bool verify_auth_proof(std::string_view key, const Hello& own, const Hello& peer, std::string_view proof);

}  // namespace clusterd
