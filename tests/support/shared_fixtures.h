// Where the shared test fixtures are: X/shared next to the repository X/main.
// Tests that need them GTEST_SKIP() with a clear message when they are missing.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <optional>

namespace clusterd::testing {

// The shared/ folder, found from the working directory (ctest runs in the build dir)
// or from the test binary's location; nullopt when it is not there.
inline std::optional<std::filesystem::path> find_shared_dir() {
  namespace fs = std::filesystem;
  std::vector<fs::path> starts = {fs::current_path()};
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) starts.push_back(exe.parent_path());
  for (const auto& start : starts) {
    for (fs::path dir = start; !dir.empty(); dir = dir.parent_path()) {
      if (fs::is_directory(dir / "shared" / "models", ec) && fs::is_directory(dir / "shared" / "golden", ec)) {
        return dir / "shared";
      }
      if (dir == dir.parent_path()) break;
    }
  }
  return std::nullopt;
}

}  // namespace clusterd::testing
