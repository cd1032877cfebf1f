#include "clusterd/common/logging.h"

#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <vector>

namespace clusterd {

Status setup_logging(const std::string& level, const std::filesystem::path& log_dir) {
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  if (!log_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(log_dir, ec);
    if (ec) return io_error("log dir " + log_dir.string() + ": cannot be created: " + ec.message());
    try {
      sinks.push_back(
          std::make_shared<spdlog::sinks::rotating_file_sink_mt>((log_dir / "clusterd.log").string(), 10u << 20, 5));
    } catch (const spdlog::spdlog_ex& e) {
      return io_error("log file in " + log_dir.string() + ": " + e.what());
    }
  }
  auto logger = std::make_shared<spdlog::logger>("clusterd", sinks.begin(), sinks.end());
  logger->set_level(spdlog::level::from_str(level));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return Status::ok();
}

}  // namespace clusterd
