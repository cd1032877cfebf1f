#include "clusterd/common/node_identity.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "clusterd/common/clock.h"
#include "clusterd/common/crypto.h"

namespace clusterd {

namespace fs = std::filesystem;

Status write_file_atomically(const fs::path& path, const std::string& text, unsigned mode) {
  fs::path tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return io_error(path.string() + ": cannot be written: " + std::strerror(errno));
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return io_error(path.string() + ": write failed: " + std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return io_error(path.string() + ": cannot be replaced: " + std::strerror(errno));
  }
  return Status::ok();
}

static bool read_small_file(const fs::path& path, std::string& out) {
  std::ifstream in(path);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ' || out.back() == '\r')) out.pop_back();
  return true;
}

Result<NodeIdentity> load_or_create_identity(const fs::path& data_dir) {
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec) return io_error("data dir " + data_dir.string() + ": cannot be created: " + ec.message());
  ::chmod(data_dir.c_str(), 0700);

  NodeIdentity identity;
  fs::path id_path = data_dir / "node_id";
  std::string text;
  if (read_small_file(id_path, text)) {
    if (!is_uuid(text)) {
      return invalid_argument("node id file " + id_path.string() + ": '" + text.substr(0, 64) +
                              "' is not a UUID; delete the file to make a new identity");
    }
    identity.id = text;
  } else {
    identity.id = make_uuid();
    identity.created = true;
    if (Status s = write_file_atomically(id_path, identity.id + "\n", 0600); !s.is_ok()) return s;
  }

  // Wall-clock milliseconds make incarnations comparable across data-dir copies; the
  // stored value keeps them growing even if the clock steps back.
  fs::path inc_path = data_dir / "incarnation";
  uint64_t last = 0;
  if (read_small_file(inc_path, text)) last = std::strtoull(text.c_str(), nullptr, 10);
  identity.incarnation = std::max<uint64_t>(static_cast<uint64_t>(wall_clock_ms()), last + 1);
  if (Status s = write_file_atomically(inc_path, std::to_string(identity.incarnation) + "\n", 0600); !s.is_ok()) {
    return s;
  }
  return identity;
}

}  // namespace clusterd
