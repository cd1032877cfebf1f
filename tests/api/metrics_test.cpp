// Prometheus text exposition as a scraper reads it.
#include "clusterd/api/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

namespace clusterd {
namespace {

std::string one_sample(double value) {
  MetricsWriter w;
  w.sample("m", value);
  return w.text();
}

TEST(MetricsWriter, FamilyWritesHelpThenTypeLines) {
  MetricsWriter w;
  w.family("clusterd_peers", "gauge", "Known peers, by status.");
  EXPECT_EQ(w.text(), "# HELP clusterd_peers Known peers, by status.\n# TYPE clusterd_peers gauge\n");
}

TEST(MetricsWriter, SampleWithoutLabelsIsNameSpaceValue) {
  MetricsWriter w;
  w.sample("clusterd_beacons_sent_total", 17);
  EXPECT_EQ(w.text(), "clusterd_beacons_sent_total 17\n");
}

TEST(MetricsWriter, SampleWithLabelsListsThemInOrderInBraces) {
  MetricsWriter w;
  w.sample("clusterd_http_requests_total", {{"route", "/v1/peers"}, {"code", "200"}}, 3);
  EXPECT_EQ(w.text(), "clusterd_http_requests_total{route=\"/v1/peers\",code=\"200\"} 3\n");
}

TEST(MetricsWriter, HistogramBucketsAreCumulativeAndEndWithInfSumAndCount) {
  Histogram h({0.1, 1});
  h.observe(0.05);
  h.observe(0.1);  // on a bound: counted in that bucket (le is "less or equal")
  h.observe(0.5);
  h.observe(7);
  MetricsWriter w;
  w.histogram("ttft_seconds", {{"model", "m"}}, h);
  EXPECT_EQ(w.text(),
            "ttft_seconds_bucket{model=\"m\",le=\"0.1\"} 2\n"
            "ttft_seconds_bucket{model=\"m\",le=\"1\"} 3\n"
            "ttft_seconds_bucket{model=\"m\",le=\"+Inf\"} 4\n"
            "ttft_seconds_sum{model=\"m\"} 7.65\n"
            "ttft_seconds_count{model=\"m\"} 4\n");
}

TEST(MetricsWriter, FamiliesAndSamplesFollowEachOtherInOrder) {
  MetricsWriter w;
  w.family("a_total", "counter", "A.");
  w.sample("a_total", {{"k", "x"}}, 1);
  w.sample("a_total", {{"k", "y"}}, 2);
  w.family("b", "gauge", "B.");
  w.sample("b", 0);
  EXPECT_EQ(w.text(),
            "# HELP a_total A.\n# TYPE a_total counter\n"
            "a_total{k=\"x\"} 1\na_total{k=\"y\"} 2\n"
            "# HELP b B.\n# TYPE b gauge\nb 0\n");
}

TEST(MetricsWriter, LabelValuesEscapeQuoteBackslashAndNewline) {
  MetricsWriter w;
  w.sample("m", {{"name", "say \"hi\"\\now\nnext"}}, 1);
  EXPECT_EQ(w.text(), "m{name=\"say \\\"hi\\\"\\\\now\\nnext\"} 1\n");
}

TEST(MetricsWriter, HelpTextEscapesBackslashAndNewlineSoItStaysOneLine) {
  MetricsWriter w;
  w.family("m", "gauge", "first line\nsecond \\ line");
  EXPECT_EQ(w.text(), "# HELP m first line\\nsecond \\\\ line\n# TYPE m gauge\n");
}

TEST(MetricsWriter, IntegersHaveNoDecimals) {
  EXPECT_EQ(one_sample(0), "m 0\n");
  EXPECT_EQ(one_sample(42), "m 42\n");
  EXPECT_EQ(one_sample(-7), "m -7\n");
  EXPECT_EQ(one_sample(1099511627776.0), "m 1099511627776\n");  // 1 TiB of memory, every digit
}

TEST(MetricsWriter, FractionsKeepTheirDecimals) {
  EXPECT_EQ(one_sample(0.5), "m 0.5\n");
  EXPECT_EQ(one_sample(0.000123), "m 0.000123\n");
}

TEST(MetricsWriter, NonFiniteValuesUsePrometheusSpelling) {
  EXPECT_EQ(one_sample(std::numeric_limits<double>::quiet_NaN()), "m NaN\n");
  EXPECT_EQ(one_sample(std::numeric_limits<double>::infinity()), "m +Inf\n");
  EXPECT_EQ(one_sample(-std::numeric_limits<double>::infinity()), "m -Inf\n");
}

TEST(EscapeLabelValue, LeavesOrdinaryTextAlone) {
  EXPECT_EQ(escape_label_value("gpu-node_7.rack:2 ünï"), "gpu-node_7.rack:2 ünï");
}

TEST(EscapeLabelValue, EscapesEachSpecialCharacter) {
  EXPECT_EQ(escape_label_value("\\"), "\\\\");
  EXPECT_EQ(escape_label_value("\""), "\\\"");
  EXPECT_EQ(escape_label_value("\n"), "\\n");
}

TEST(ProcessResidentMemory, IsAPlausibleSizeForThisProcess) {
  double rss = process_resident_memory_bytes();
  EXPECT_GT(rss, 1 << 20);           // a test binary holds more than 1 MiB
  EXPECT_LT(rss, 64.0 * (1 << 30));  // and less than 64 GiB
}

}  // namespace
}  // namespace clusterd
