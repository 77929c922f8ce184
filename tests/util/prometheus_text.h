// A strict parser of the Prometheus text exposition format (version 0.0.4),
// for tests that check a live /metrics page: every line must be a HELP or
// TYPE comment or a well-formed sample of a declared family; histograms must
// have cumulative buckets ending in le="+Inf" equal to _count.
#ifndef HEADROOM_TESTS_UTIL_PROMETHEUS_TEXT_H_
#define HEADROOM_TESTS_UTIL_PROMETHEUS_TEXT_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace hr::testing {

struct MetricSample {
  std::string name;                           // e.g. headroom_ttft_seconds_bucket
  std::map<std::string, std::string> labels;  // unescaped values
  double value = 0.0;
};

struct MetricFamily {
  std::string type;  // counter | gauge | histogram | summary | untyped
  std::string help;
  std::vector<MetricSample> samples;
};

// Families by name. INVALID_ARGUMENT naming the line for any syntax error or
// inconsistency.
absl::StatusOr<std::map<std::string, MetricFamily>> ParsePrometheusText(const std::string& text);

// The sum of a family's samples named `sample_name` whose labels include all
// of `labels` (0 when none).
double SumSamples(const std::map<std::string, MetricFamily>& families, const std::string& family,
                  const std::string& sample_name,
                  const std::map<std::string, std::string>& labels = {});

}  // namespace hr::testing

#endif  // HEADROOM_TESTS_UTIL_PROMETHEUS_TEXT_H_
