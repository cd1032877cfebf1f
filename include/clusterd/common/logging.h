// Logging setup: spdlog's default logger writes to stderr and, when a directory is
// given, to a rotating file in it (10 MiB x 5).
#pragma once

#include <filesystem>
#include <string>

#include "clusterd/common/status.h"

namespace clusterd {

// `level` is one of trace, debug, info, warn, error, critical, off. `log_dir` empty:
// stderr only.
Status setup_logging(const std::string& level, const std::filesystem::path& log_dir);

}  // namespace clusterd
