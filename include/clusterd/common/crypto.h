// Cryptographic helpers on OpenSSL: HMAC-SHA256, SHA-256, random bytes, hex, and the
// cluster key (the shared secret that authenticates beacons and control links).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "clusterd/common/status.h"

namespace clusterd {

using Digest = std::array<uint8_t, 32>;

Digest hmac_sha256(std::string_view key, std::span<const uint8_t> data);
Digest hmac_sha256(std::string_view key, std::string_view data);
Digest sha256(std::span<const uint8_t> data);

// Compares in time independent of where the inputs differ.
bool constant_time_equal(std::span<const uint8_t> a, std::span<const uint8_t> b);

// Cryptographically secure random bytes (OpenSSL RAND_bytes); aborts if the RNG fails,
// since every caller needs them for security.
std::vector<uint8_t> random_bytes(size_t n);
uint64_t random_u64();

std::string to_hex(std::span<const uint8_t> bytes);
// Returns false on odd length or a non-hex character.
bool from_hex(std::string_view hex, std::vector<uint8_t>& out);

// A random version-4 UUID, "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".
std::string make_uuid();
bool is_uuid(std::string_view text);

constexpr size_t kMinClusterKeyLength = 16;

// A fresh cluster key: 43 characters of base64url over 32 random bytes.
std::string generate_cluster_key();
// Checks a key as read from a file: surrounding whitespace removed, at least
// kMinClusterKeyLength characters, no control characters inside. Returns the key.
Result<std::string> parse_cluster_key(std::string_view text, const std::string& source);
Result<std::string> read_cluster_key_file(const std::filesystem::path& path);
// The public cluster id derived from the key: 16 hex characters. Nodes with different
// keys have different ids, so a beacon from another cluster is told apart before its MAC.
std::string cluster_id_for_key(std::string_view key);

}  // namespace clusterd
