// Prometheus text exposition (format 0.0.4): families with HELP and TYPE, then samples.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clusterd/common/histogram.h"

namespace clusterd {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class MetricsWriter {
 public:
  // Starts a family; `type` is "counter", "gauge" or "histogram". Samples that follow
  // belong to it.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const MetricLabels& labels, double value);
  void sample(std::string_view name, double value) { sample(name, {}, value); }
  // The samples of a histogram family: cumulative NAME_bucket{le=...}, NAME_sum, NAME_count.
  void histogram(std::string_view name, const MetricLabels& labels, const Histogram& h);
  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

// Escapes a label value: backslash, double quote and line feed.
std::string escape_label_value(std::string_view value);

// Resident set size of this process in bytes (from /proc/self/statm; 0 if unknown).
double process_resident_memory_bytes();

}  // namespace clusterd
