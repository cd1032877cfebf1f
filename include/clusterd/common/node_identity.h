// The node identity: a UUID made once and kept in the data dir, and an incarnation
// number that grows with every start, so peers can tell a restart from a replay.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "clusterd/common/status.h"

namespace clusterd {

struct NodeIdentity {
  std::string id;            // UUID, stable across restarts
  uint64_t incarnation = 0;  // strictly greater than any earlier start from this data dir
  bool created = false;      // true when this start made the id
};

// Creates DATA_DIR (0700) if needed, reads DATA_DIR/node_id or writes a new one, and
// bumps DATA_DIR/incarnation. Errors name the file and the fix.
Result<NodeIdentity> load_or_create_identity(const std::filesystem::path& data_dir);

// Writes `text` to `path` through a temporary file and rename, with `mode` bits.
Status write_file_atomically(const std::filesystem::path& path, const std::string& text, unsigned mode);

}  // namespace clusterd
