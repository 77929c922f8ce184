#include "server/longctx/long_context_params.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"

namespace hr {

absl::Status LongContextParams::Validate() const {
  if (chunk_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("chunk_size must be > 0, got ", chunk_size));
  }
  if (policy == AttentionPolicy::kFull) return absl::OkStatus();
  if (atten_length <= 0 || atten_length % chunk_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat("atten_length (", atten_length,
                                                   ") must be a positive multiple of chunk_size (",
                                                   chunk_size, ")"));
  }
  if (slots() < 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "atten_length / chunk_size must be at least 3 slots (sink, previous, own chunk), got ",
        slots()));
  }
  return absl::OkStatus();
}

LongContextParams DefaultLongContextParams(const ModelConfig& config, int32_t atten_length) {
  LongContextParams p;
  p.atten_length = atten_length != 0
                       ? atten_length
                       : static_cast<int32_t>(std::min<int64_t>(
                             config.trained_context > 0 ? config.trained_context : 2048, 4096));
  p.chunk_size = std::max(1, p.atten_length / 8);
  return p;
}

namespace {

template <typename E, size_t N>
absl::StatusOr<E> ParseName(std::string_view name, const char* what,
                            const std::pair<std::string_view, E> (&table)[N]) {
  std::string options;
  for (const auto& [n, e] : table) {
    if (n == name) return e;
    absl::StrAppend(&options, options.empty() ? "" : ", ", std::string(n));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown ", what, " '", std::string(name), "' (one of: ", options, ")"));
}

constexpr std::pair<std::string_view, AttentionPolicy> kPolicies[] = {
    {"full", AttentionPolicy::kFull},
    {"window", AttentionPolicy::kWindow},
    {"longheads", AttentionPolicy::kLongHeads}};
constexpr std::pair<std::string_view, SummaryKind> kSummaries[] = {
    {"longheads", SummaryKind::kLongHeads}, {"bound", SummaryKind::kBound}, {"mean", SummaryKind::kMean}};
constexpr std::pair<std::string_view, GqaSelection> kGqa[] = {
    {"query_head", GqaSelection::kPerQueryHead}, {"kv_head", GqaSelection::kPerKvHead}};
constexpr std::pair<std::string_view, PrefillSelection> kPrefill[] = {
    {"token", PrefillSelection::kPerToken}, {"chunk", PrefillSelection::kPerChunk}};

template <typename E, size_t N>
std::string_view NameOf(E e, const std::pair<std::string_view, E> (&table)[N]) {
  for (const auto& [n, v] : table) {
    if (v == e) return n;
  }
  return "unknown";
}

}  // namespace

std::string_view PolicyName(AttentionPolicy p) { return NameOf(p, kPolicies); }
std::string_view SummaryKindName(SummaryKind k) { return NameOf(k, kSummaries); }
std::string_view GqaSelectionName(GqaSelection g) { return NameOf(g, kGqa); }
std::string_view PrefillSelectionName(PrefillSelection p) { return NameOf(p, kPrefill); }

absl::StatusOr<AttentionPolicy> ParsePolicy(std::string_view name) {
  return ParseName(name, "attention policy", kPolicies);
}
absl::StatusOr<SummaryKind> ParseSummaryKind(std::string_view name) {
  return ParseName(name, "summary kind", kSummaries);
}
absl::StatusOr<GqaSelection> ParseGqaSelection(std::string_view name) {
  return ParseName(name, "GQA selection", kGqa);
}
absl::StatusOr<PrefillSelection> ParsePrefillSelection(std::string_view name) {
  return ParseName(name, "prefill selection", kPrefill);
}

}  // namespace hr
