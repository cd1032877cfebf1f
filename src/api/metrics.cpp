#include "clusterd/api/metrics.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace clusterd {

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out.push_back(c);
  }
  return out;
}

void MetricsWriter::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  for (char c : help) {  // HELP text escapes only backslash and line feed
    if (c == '\\')
      out_ += "\\\\";
    else if (c == '\n')
      out_ += "\\n";
    else
      out_.push_back(c);
  }
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void MetricsWriter::sample(std::string_view name, const MetricLabels& labels, double value) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i) out_ += ',';
      out_ += labels[i].first;
      out_ += "=\"";
      out_ += escape_label_value(labels[i].second);
      out_ += '"';
    }
    out_ += '}';
  }
  out_ += ' ';
  char buf[64];
  if (std::isnan(value))
    std::snprintf(buf, sizeof(buf), "NaN");
  else if (std::isinf(value))
    std::snprintf(buf, sizeof(buf), value > 0 ? "+Inf" : "-Inf");
  else if (value == std::floor(value) && std::fabs(value) < 1e15)
    std::snprintf(buf, sizeof(buf), "%.0f", value);
  else
    std::snprintf(buf, sizeof(buf), "%.9g", value);
  out_ += buf;
  out_ += '\n';
}

void MetricsWriter::histogram(std::string_view name, const MetricLabels& labels, const Histogram& h) {
  const std::string base(name);
  uint64_t cumulative = 0;
  char le[64];
  for (size_t i = 0; i <= h.bounds().size(); ++i) {
    cumulative += h.counts()[i];
    if (i < h.bounds().size()) {
      std::snprintf(le, sizeof(le), "%g", h.bounds()[i]);
    } else {
      std::snprintf(le, sizeof(le), "+Inf");
    }
    MetricLabels with_le = labels;
    with_le.emplace_back("le", le);
    sample(base + "_bucket", with_le, static_cast<double>(cumulative));
  }
  sample(base + "_sum", labels, h.sum());
  sample(base + "_count", labels, static_cast<double>(h.count()));
}

double process_resident_memory_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

}  // namespace clusterd
