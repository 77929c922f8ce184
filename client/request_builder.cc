#include "client/request_builder.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace hr::client {
namespace v1 = ::headroom::v1;
namespace {

// The enum value named `name` among `table` ("" maps to `unset`).
template <typename Enum>
absl::StatusOr<Enum> ParseName(const std::string& flag, const std::string& name, Enum unset,
                               std::initializer_list<std::pair<const char*, Enum>> table) {
  if (name.empty()) return unset;
  std::vector<std::string> names;
  for (const auto& [n, value] : table) {
    if (name == n) return value;
    names.emplace_back(n);
  }
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": unknown value '", name,
                                                 "' (expected ", absl::StrJoin(names, " | "), ")"));
}

}  // namespace

absl::StatusOr<v1::GenerateRequest> BuildGenerateRequest(const GenerateFlags& f) {
  v1::GenerateRequest r;
  if (!f.add_bos) r.set_add_bos(false);
  v1::SamplingParams* s = r.mutable_sampling();
  s->set_temperature(f.temperature);
  s->set_top_k(f.top_k);
  if (f.top_p != 1.0f) s->set_top_p(f.top_p);
  s->set_min_p(f.min_p);
  if (f.repetition_penalty != 1.0f) s->set_repetition_penalty(f.repetition_penalty);
  s->set_seed(f.seed);
  v1::StopCriteria* stop = r.mutable_stop();
  if (f.max_tokens != 0) stop->set_max_tokens(f.max_tokens);
  for (const std::string& str : f.stop) stop->add_stop_strings(str);
  stop->set_ignore_eos(f.ignore_eos);

  v1::LongContextOptions* lc = r.mutable_long_context();
  auto policy = ParseName<v1::AttentionPolicy>(
      "policy", f.policy, v1::ATTENTION_POLICY_UNSPECIFIED,
      {{"full", v1::ATTENTION_POLICY_FULL},
       {"window", v1::ATTENTION_POLICY_WINDOW},
       {"longheads", v1::ATTENTION_POLICY_LONGHEADS}});
  if (!policy.ok()) return policy.status();
  lc->set_policy(*policy);
  lc->set_chunk_size(f.chunk_size);
  lc->set_atten_length(f.atten_length);
  auto summary = ParseName<v1::SummaryKind>("summary", f.summary, v1::SUMMARY_KIND_UNSPECIFIED,
                                            {{"longheads", v1::SUMMARY_KIND_LONGHEADS},
                                             {"bound", v1::SUMMARY_KIND_BOUND},
                                             {"mean", v1::SUMMARY_KIND_MEAN}});
  if (!summary.ok()) return summary.status();
  lc->set_summary(*summary);
  auto gqa = ParseName<v1::GqaSelection>("gqa_selection", f.gqa_selection,
                                         v1::GQA_SELECTION_UNSPECIFIED,
                                         {{"query_head", v1::GQA_SELECTION_QUERY_HEAD},
                                          {"kv_head", v1::GQA_SELECTION_KV_HEAD}});
  if (!gqa.ok()) return gqa.status();
  lc->set_gqa_selection(*gqa);
  auto prefill = ParseName<v1::PrefillSelection>("prefill_selection", f.prefill_selection,
                                                 v1::PREFILL_SELECTION_UNSPECIFIED,
                                                 {{"token", v1::PREFILL_SELECTION_TOKEN},
                                                  {"chunk", v1::PREFILL_SELECTION_CHUNK}});
  if (!prefill.ok()) return prefill.status();
  lc->set_prefill_selection(*prefill);

  auto priority = ParseName<v1::Priority>("priority", f.priority, v1::PRIORITY_UNSPECIFIED,
                                          {{"low", v1::PRIORITY_LOW},
                                           {"normal", v1::PRIORITY_NORMAL},
                                           {"high", v1::PRIORITY_HIGH}});
  if (!priority.ok()) return priority.status();
  r.set_priority(*priority);
  r.set_request_id(f.request_id);
  r.set_logprobs(f.logprobs);
  return r;
}

std::string FinishReasonName(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_LENGTH:
      return "length";
    case v1::FINISH_REASON_STOP_TOKEN:
      return "stop_token";
    case v1::FINISH_REASON_STOP_STRING:
      return "stop_string";
    default:
      return "unspecified";
  }
}

}  // namespace hr::client
