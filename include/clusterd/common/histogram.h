// A histogram with fixed bucket bounds, in the shape Prometheus exposes: per-bucket
// counts, the sum and the count of observations.
#pragma once

#include <cstdint>
#include <vector>

namespace clusterd {

class Histogram {
 public:
  // `upper_bounds` ascending; a last bucket for everything above is implied.
  explicit Histogram(std::vector<double> upper_bounds)
      : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

  void observe(double value) {
    size_t i = 0;
    while (i < bounds_.size() && value > bounds_[i]) ++i;
    counts_[i]++;
    sum_ += value;
    count_++;
  }
  const std::vector<double>& bounds() const { return bounds_; }
  // Observations per bucket (not cumulative); the last is above every bound.
  const std::vector<uint64_t>& counts() const { return counts_; }
  double sum() const { return sum_; }
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  double sum_ = 0;
  uint64_t count_ = 0;
};

}  // namespace clusterd
