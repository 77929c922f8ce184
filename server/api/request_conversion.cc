#include "server/api/request_conversion.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/status.h"

namespace hr::api {
namespace {

namespace pb = ::headroom::v1;

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

absl::Status ValidateSampling(const pb::SamplingParams& s, SamplingParams* out) {
  if (!(std::isfinite(s.temperature()) && s.temperature() >= 0.0f)) {
    return Invalid(absl::StrCat("sampling.temperature must be a finite value >= 0, got ",
                                s.temperature()));
  }
  if (s.top_k() < 0) {
    return Invalid(absl::StrCat("sampling.top_k must be >= 0, got ", s.top_k()));
  }
  if (s.has_top_p() && !(s.top_p() > 0.0f && s.top_p() <= 1.0f)) {
    return Invalid(absl::StrCat("sampling.top_p must be in (0, 1], got ", s.top_p()));
  }
  if (!(s.min_p() >= 0.0f && s.min_p() < 1.0f)) {
    return Invalid(absl::StrCat("sampling.min_p must be in [0, 1), got ", s.min_p()));
  }
  if (s.has_repetition_penalty() &&
      !(std::isfinite(s.repetition_penalty()) && s.repetition_penalty() > 0.0f)) {
    return Invalid(absl::StrCat("sampling.repetition_penalty must be a finite value > 0, got ",
                                s.repetition_penalty()));
  }
  out->temperature = s.temperature();
  out->top_k = s.top_k();
  out->top_p = s.has_top_p() ? s.top_p() : 1.0f;
  out->min_p = s.min_p();
  out->repetition_penalty = s.has_repetition_penalty() ? s.repetition_penalty() : 1.0f;
  out->seed = s.seed();
  return absl::OkStatus();
}

absl::Status ValidateStop(const pb::StopCriteria& s, const RequestDefaults& d,
                          GenerateOptions* out) {
  const ApiLimits& limits = d.limits;
  if (s.has_max_tokens()) {
    if (s.max_tokens() < 1 || s.max_tokens() > limits.max_new_tokens) {
      return Invalid(absl::StrCat("stop.max_tokens must be in [1, ", limits.max_new_tokens,
                                  "], got ", s.max_tokens()));
    }
    out->max_tokens = s.max_tokens();
  } else {
    out->max_tokens = limits.default_max_tokens;
  }
  if (s.stop_strings_size() > limits.max_stop_strings) {
    return Invalid(absl::StrCat("stop.stop_strings has ", s.stop_strings_size(),
                                " entries, at most ", limits.max_stop_strings, " allowed"));
  }
  for (int i = 0; i < s.stop_strings_size(); ++i) {
    const std::string& stop = s.stop_strings(i);
    if (stop.empty()) return Invalid(absl::StrCat("stop.stop_strings[", i, "] must not be empty"));
    if (stop.size() > static_cast<size_t>(limits.max_stop_string_bytes)) {
      return Invalid(absl::StrCat("stop.stop_strings[", i, "] is ", stop.size(),
                                  " bytes, at most ", limits.max_stop_string_bytes, " allowed"));
    }
    if (!IsValidUtf8(stop)) {
      return Invalid(absl::StrCat("stop.stop_strings[", i, "] is not valid UTF-8"));
    }
  }
  if (s.stop_token_ids_size() > limits.max_stop_token_ids) {
    return Invalid(absl::StrCat("stop.stop_token_ids has ", s.stop_token_ids_size(),
                                " entries, at most ", limits.max_stop_token_ids, " allowed"));
  }
  HR_RETURN_IF_ERROR(
      ValidateTokenIds(s.stop_token_ids(), d.tokenizer->vocab_size(), "stop.stop_token_ids"));
  out->stop_strings.assign(s.stop_strings().begin(), s.stop_strings().end());
  out->stop_token_ids.assign(s.stop_token_ids().begin(), s.stop_token_ids().end());
  out->stop_at_eos = !s.ignore_eos();
  return absl::OkStatus();
}

// The server's defaults with the request's overrides; LongContextParams'
// own messages name the parameter, prefixed here with the proto message.
absl::Status ValidateLongContext(const pb::LongContextOptions& o, const RequestDefaults& d,
                                 LongContextParams* out) {
  if (!pb::AttentionPolicy_IsValid(o.policy())) {
    return Invalid(absl::StrCat("long_context.policy has unknown value ", o.policy()));
  }
  if (!pb::SummaryKind_IsValid(o.summary())) {
    return Invalid(absl::StrCat("long_context.summary has unknown value ", o.summary()));
  }
  if (!pb::GqaSelection_IsValid(o.gqa_selection())) {
    return Invalid(
        absl::StrCat("long_context.gqa_selection has unknown value ", o.gqa_selection()));
  }
  if (!pb::PrefillSelection_IsValid(o.prefill_selection())) {
    return Invalid(
        absl::StrCat("long_context.prefill_selection has unknown value ", o.prefill_selection()));
  }
  if (o.chunk_size() < 0) {
    return Invalid(absl::StrCat("long_context.chunk_size must be >= 0 (0: the server's default), got ",
                                o.chunk_size()));
  }
  if (o.atten_length() < 0) {
    return Invalid(absl::StrCat(
        "long_context.atten_length must be >= 0 (0: the server's default), got ", o.atten_length()));
  }
  LongContextParams p = d.long_context;
  if (o.policy() != pb::ATTENTION_POLICY_UNSPECIFIED) p.policy = PolicyFromProto(o.policy());
  if (o.summary() != pb::SUMMARY_KIND_UNSPECIFIED) p.summary = SummaryKindFromProto(o.summary());
  if (o.gqa_selection() != pb::GQA_SELECTION_UNSPECIFIED) {
    p.gqa = GqaSelectionFromProto(o.gqa_selection());
  }
  if (o.prefill_selection() != pb::PREFILL_SELECTION_UNSPECIFIED) {
    p.prefill = PrefillSelectionFromProto(o.prefill_selection());
  }
  if (o.chunk_size() != 0) p.chunk_size = o.chunk_size();
  if (o.atten_length() != 0) p.atten_length = o.atten_length();
  // No sequence is longer than `longest`; a larger window or chunk would
  // only cost memory (the slot tables grow with the window).
  const int64_t longest = d.limits.max_input_tokens + d.limits.max_new_tokens;
  const int64_t max_window = std::max<int64_t>(longest, d.long_context.atten_length);
  const int64_t max_chunk = std::max<int64_t>(longest, d.long_context.chunk_size);
  if (o.atten_length() > max_window) {
    return Invalid(absl::StrCat("long_context.atten_length must be at most ", max_window,
                                ", got ", o.atten_length()));
  }
  if (o.chunk_size() > max_chunk) {
    return Invalid(absl::StrCat("long_context.chunk_size must be at most ", max_chunk, ", got ",
                                o.chunk_size()));
  }
  absl::Status valid = p.Validate();
  if (!valid.ok()) {
    return Invalid(absl::StrCat("long_context.", std::string(valid.message())));
  }
  *out = p;
  return absl::OkStatus();
}

absl::StatusOr<Priority> PriorityFromProto(int p) {
  switch (p) {
    case pb::PRIORITY_UNSPECIFIED:
    case pb::PRIORITY_NORMAL:
      return Priority::kNormal;
    case pb::PRIORITY_LOW:
      return Priority::kLow;
    case pb::PRIORITY_HIGH:
      return Priority::kHigh;
    default:
      return Invalid(absl::StrCat("priority has unknown value ", p));
  }
}

absl::StatusOr<std::vector<int32_t>> PromptTokens(const pb::GenerateRequest& r,
                                                  const RequestDefaults& d) {
  const int32_t vocab = d.tokenizer->vocab_size();
  std::vector<int32_t> ids;
  switch (r.input_case()) {
    case pb::GenerateRequest::kText: {
      if (r.text().empty()) return Invalid("text must not be empty");
      if (!IsValidUtf8(r.text())) return Invalid("text is not valid UTF-8");
      auto encoded = d.tokenizer->Encode(r.text(), r.has_add_bos() ? r.add_bos() : true);
      if (!encoded.ok()) {
        return Invalid(absl::StrCat("text: ", std::string(encoded.status().message())));
      }
      ids = std::move(*encoded);
      if (ids.empty()) return Invalid("text encodes to no tokens");
      break;
    }
    case pb::GenerateRequest::kTokens:
      if (r.tokens().ids().empty()) return Invalid("tokens.ids must not be empty");
      HR_RETURN_IF_ERROR(ValidateTokenIds(r.tokens().ids(), vocab, "tokens.ids"));
      ids.assign(r.tokens().ids().begin(), r.tokens().ids().end());
      break;
    default:
      return Invalid("input must be set: text or tokens");
  }
  if (static_cast<int64_t>(ids.size()) > d.limits.max_input_tokens) {
    return absl::OutOfRangeError(absl::StrCat("the input has ", ids.size(),
                                              " tokens, more than the server's limit of ",
                                              d.limits.max_input_tokens, " (max_input_tokens)"));
  }
  return ids;
}

}  // namespace

absl::Status ValidateRequestId(const std::string& id, int32_t max_bytes, bool allow_empty) {
  if (id.empty() && !allow_empty) return Invalid("request_id must not be empty");
  if (id.size() > static_cast<size_t>(max_bytes)) {
    return Invalid(absl::StrCat("request_id is ", id.size(), " bytes, at most ", max_bytes,
                                " allowed"));
  }
  return absl::OkStatus();
}

absl::Status ValidateTokenIds(const google::protobuf::RepeatedField<int32_t>& ids,
                              int32_t vocab_size, const char* field) {
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      return Invalid(absl::StrCat(field, "[", i, "] = ", ids[i], " is outside the vocabulary [0, ",
                                  vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<RequestSpec> ToRequestSpec(const pb::GenerateRequest& request,
                                          const RequestDefaults& defaults, absl::Time deadline) {
  RequestSpec spec;
  // Cheap checks first; tokenizing the text comes last.
  HR_RETURN_IF_ERROR(
      ValidateRequestId(request.request_id(), defaults.limits.max_request_id_bytes, true));
  if (request.logprobs() < 0 || request.logprobs() > defaults.limits.max_logprobs) {
    return Invalid(absl::StrCat("logprobs must be in [0, ", defaults.limits.max_logprobs,
                                "], got ", request.logprobs()));
  }
  HR_ASSIGN_OR_RETURN(spec.priority, PriorityFromProto(request.priority()));
  HR_RETURN_IF_ERROR(ValidateSampling(request.sampling(), &spec.generation.sampling));
  HR_RETURN_IF_ERROR(ValidateStop(request.stop(), defaults, &spec.generation));
  HR_RETURN_IF_ERROR(ValidateLongContext(request.long_context(), defaults, &spec.long_context));
  HR_ASSIGN_OR_RETURN(spec.prompt, PromptTokens(request, defaults));
  if (defaults.model != nullptr) {
    const int64_t longest =
        static_cast<int64_t>(spec.prompt.size()) + spec.generation.max_tokens;
    const absl::Status supported = defaults.model->CheckLongContext(spec.long_context, longest);
    if (!supported.ok()) {
      return absl::Status(supported.code(),
                          absl::StrCat("long_context.", std::string(supported.message())));
    }
  }
  spec.id = request.request_id();
  spec.logprobs = request.logprobs();
  spec.prompt_logprobs = request.prompt_logprobs();
  spec.deadline = deadline;
  return spec;
}

absl::Time DeadlineFromGrpc(std::chrono::system_clock::time_point deadline) {
  // gRPC reports "no deadline" as time_point::max(); anything a century out
  // is as good as none and would overflow the conversion.
  const auto now = std::chrono::system_clock::now();
  if (deadline - now > std::chrono::hours(24 * 365 * 100)) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

AttentionPolicy PolicyFromProto(pb::AttentionPolicy p) {
  switch (p) {
    case pb::ATTENTION_POLICY_FULL:
      return AttentionPolicy::kFull;
    case pb::ATTENTION_POLICY_WINDOW:
      return AttentionPolicy::kWindow;
    default:
      return AttentionPolicy::kLongHeads;
  }
}

SummaryKind SummaryKindFromProto(pb::SummaryKind k) {
  switch (k) {
    case pb::SUMMARY_KIND_LONGHEADS:
      return SummaryKind::kLongHeads;
    case pb::SUMMARY_KIND_MEAN:
      return SummaryKind::kMean;
    default:
      return SummaryKind::kBound;
  }
}

GqaSelection GqaSelectionFromProto(pb::GqaSelection g) {
  return g == pb::GQA_SELECTION_KV_HEAD ? GqaSelection::kPerKvHead : GqaSelection::kPerQueryHead;
}

PrefillSelection PrefillSelectionFromProto(pb::PrefillSelection p) {
  return p == pb::PREFILL_SELECTION_CHUNK ? PrefillSelection::kPerChunk
                                          : PrefillSelection::kPerToken;
}

}  // namespace hr::api
