#include "tests/util/prometheus_text.h"

#include <cmath>
#include <cstdlib>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace hr::testing {
namespace {

const std::regex& MetricName() {
  static const std::regex re("[a-zA-Z_:][a-zA-Z0-9_:]*");
  return re;
}
const std::regex& LabelName() {
  static const std::regex re("[a-zA-Z_][a-zA-Z0-9_]*");
  return re;
}

bool ParseValue(const std::string& s, double* v) {
  if (s == "+Inf") { *v = INFINITY; return true; }
  if (s == "-Inf") { *v = -INFINITY; return true; }
  if (s == "NaN") { *v = NAN; return true; }
  char* end = nullptr;
  *v = std::strtod(s.c_str(), &end);
  return !s.empty() && end == s.c_str() + s.size();
}

// The family a sample belongs to: its name, or for histograms/summaries the
// name without _bucket/_sum/_count.
std::string FamilyOf(const std::string& sample, const std::map<std::string, MetricFamily>& families) {
  if (families.contains(sample)) return sample;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s(suffix);
    if (sample.size() > s.size() && sample.compare(sample.size() - s.size(), s.size(), s) == 0) {
      const std::string base = sample.substr(0, sample.size() - s.size());
      if (families.contains(base)) return base;
    }
  }
  return "";
}

absl::Status ParseSample(const std::string& line, MetricSample* out) {
  size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  out->name = line.substr(0, i);
  if (!std::regex_match(out->name, MetricName())) return absl::InvalidArgumentError("bad metric name");
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      size_t eq = line.find('=', i);
      if (eq == std::string::npos) return absl::InvalidArgumentError("label without '='");
      const std::string name = line.substr(i, eq - i);
      if (!std::regex_match(name, LabelName())) return absl::InvalidArgumentError("bad label name");
      i = eq + 1;
      if (i >= line.size() || line[i] != '"') return absl::InvalidArgumentError("unquoted label value");
      ++i;
      std::string value;
      while (i < line.size() && line[i] != '"') {
        if (line[i] == '\\') {
          if (i + 1 >= line.size()) return absl::InvalidArgumentError("dangling escape");
          const char e = line[i + 1];
          if (e == 'n') value += '\n';
          else if (e == '\\' || e == '"') value += e;
          else return absl::InvalidArgumentError("bad escape in label value");
          i += 2;
        } else {
          value += line[i++];
        }
      }
      if (i >= line.size()) return absl::InvalidArgumentError("unterminated label value");
      ++i;  // closing quote
      if (out->labels.contains(name)) return absl::InvalidArgumentError("repeated label");
      out->labels[name] = value;
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return absl::InvalidArgumentError("unterminated label set");
    ++i;  // '}'
  }
  if (i >= line.size() || line[i] != ' ') return absl::InvalidArgumentError("no value");
  std::istringstream rest(line.substr(i + 1));
  std::string value, timestamp, extra;
  rest >> value >> timestamp >> extra;
  if (!ParseValue(value, &out->value)) return absl::InvalidArgumentError("bad value");
  if (!extra.empty()) return absl::InvalidArgumentError("trailing text");
  return absl::OkStatus();
}

absl::Status CheckHistogram(const std::string& name, const MetricFamily& f) {
  // Group by the labels other than le.
  std::map<std::map<std::string, std::string>, std::vector<const MetricSample*>> series;
  for (const MetricSample& s : f.samples) {
    auto labels = s.labels;
    labels.erase("le");
    series[labels].push_back(&s);
  }
  for (const auto& [labels, samples] : series) {
    double last_le = -INFINITY, last_count = 0, inf_count = -1, count = -1;
    bool has_sum = false;
    for (const MetricSample* s : samples) {
      if (s->name == name + "_bucket") {
        double le;
        if (!s->labels.contains("le") || !ParseValue(s->labels.at("le"), &le)) {
          return absl::InvalidArgumentError(absl::StrCat(name, ": bucket without a numeric le"));
        }
        if (le <= last_le || s->value < last_count) {
          return absl::InvalidArgumentError(absl::StrCat(name, ": buckets not cumulative"));
        }
        last_le = le;
        last_count = s->value;
        if (std::isinf(le)) inf_count = s->value;
      } else if (s->name == name + "_count") {
        count = s->value;
      } else if (s->name == name + "_sum") {
        has_sum = true;
      } else {
        return absl::InvalidArgumentError(absl::StrCat(name, ": unexpected sample ", s->name));
      }
    }
    if (inf_count < 0 || count < 0 || !has_sum || inf_count != count) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": needs _bucket{le=\"+Inf\"} == _count and a _sum"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::map<std::string, MetricFamily>> ParsePrometheusText(const std::string& text) {
  std::map<std::string, MetricFamily> families;
  std::istringstream in(text);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    auto error = [&](std::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", number, ": ", std::string(why), ": ", line));
    };
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream words(line);
      std::string hash, kind, name;
      words >> hash >> kind >> name;
      if (kind != "HELP" && kind != "TYPE") continue;  // other comments are allowed
      if (!std::regex_match(name, MetricName())) return error("bad metric name");
      MetricFamily& f = families[name];
      std::string rest;
      std::getline(words, rest);
      if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
      if (kind == "HELP") {
        f.help = rest;
      } else {
        static const std::regex types("counter|gauge|histogram|summary|untyped");
        if (!std::regex_match(rest, types)) return error("unknown TYPE");
        if (!f.type.empty()) return error("second TYPE for a family");
        if (!f.samples.empty()) return error("TYPE after samples");
        f.type = rest;
      }
      continue;
    }
    MetricSample sample;
    if (absl::Status s = ParseSample(line, &sample); !s.ok()) return error(std::string(s.message()));
    const std::string family = FamilyOf(sample.name, families);
    if (family.empty()) return error("sample of an undeclared family");
    MetricFamily& f = families[family];
    if (f.type.empty()) return error("sample before its TYPE");
    if (f.type == "counter" && (sample.value < 0 || std::isnan(sample.value))) {
      return error("negative counter");
    }
    f.samples.push_back(std::move(sample));
  }
  for (const auto& [name, f] : families) {
    if (f.type == "histogram") {
      if (absl::Status s = CheckHistogram(name, f); !s.ok()) return s;
    }
  }
  return families;
}

double SumSamples(const std::map<std::string, MetricFamily>& families, const std::string& family,
                  const std::string& sample_name, const std::map<std::string, std::string>& labels) {
  auto it = families.find(family);
  if (it == families.end()) return 0.0;
  double sum = 0.0;
  for (const MetricSample& s : it->second.samples) {
    if (s.name != sample_name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto l = s.labels.find(k);
      match = match && l != s.labels.end() && l->second == v;
    }
    if (match) sum += s.value;
  }
  return sum;
}

}  // namespace hr::testing
