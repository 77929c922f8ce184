#include "server/api/response_conversion.h"

namespace hr::api {

namespace pb = ::headroom::v1;

void AppendTokens(const TokenEvent& event, pb::TokenDelta* delta) {
  delta->mutable_ids()->Add(event.ids.begin(), event.ids.end());
  delta->mutable_text()->append(event.text);
  for (const TokenLogprobs& lp : event.logprobs) {
    pb::TokenLogprob* out = delta->add_logprobs();
    out->set_id(lp.id);
    out->set_logprob(lp.logprob);
    for (const TopLogprob& top : lp.top) {
      pb::TopLogprob* t = out->add_top();
      t->set_id(top.id);
      t->set_logprob(top.logprob);
    }
  }
}

pb::FinishReason ToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength:
      return pb::FINISH_REASON_LENGTH;
    case FinishReason::kStopToken:
      return pb::FINISH_REASON_STOP_TOKEN;
    case FinishReason::kStopString:
      return pb::FINISH_REASON_STOP_STRING;
  }
  return pb::FINISH_REASON_UNSPECIFIED;
}

void ToProto(const FinishEvent& finish, pb::Finished* out) {
  out->set_reason(ToProto(finish.reason));
  pb::Usage* usage = out->mutable_usage();
  usage->set_prompt_tokens(finish.usage.prompt_tokens);
  usage->set_cached_tokens(finish.usage.cached_tokens);
  usage->set_generated_tokens(finish.usage.generated_tokens);
  pb::Timings* t = out->mutable_timings();
  t->set_queue_seconds(finish.timings.queue_seconds);
  t->set_prefill_seconds(finish.timings.prefill_seconds);
  t->set_time_to_first_token_seconds(finish.timings.ttft_seconds);
  t->set_decode_seconds(finish.timings.decode_seconds);
  t->set_total_seconds(finish.timings.total_seconds);
  t->set_preemptions(finish.timings.preemptions);
}

void ToProto(const LongContextParams& params, pb::LongContextOptions* out) {
  switch (params.policy) {
    case AttentionPolicy::kFull:
      out->set_policy(pb::ATTENTION_POLICY_FULL);
      break;
    case AttentionPolicy::kWindow:
      out->set_policy(pb::ATTENTION_POLICY_WINDOW);
      break;
    case AttentionPolicy::kLongHeads:
      out->set_policy(pb::ATTENTION_POLICY_LONGHEADS);
      break;
  }
  switch (params.summary) {
    case SummaryKind::kLongHeads:
      out->set_summary(pb::SUMMARY_KIND_LONGHEADS);
      break;
    case SummaryKind::kBound:
      out->set_summary(pb::SUMMARY_KIND_BOUND);
      break;
    case SummaryKind::kMean:
      out->set_summary(pb::SUMMARY_KIND_MEAN);
      break;
  }
  out->set_gqa_selection(params.gqa == GqaSelection::kPerKvHead ? pb::GQA_SELECTION_KV_HEAD
                                                                : pb::GQA_SELECTION_QUERY_HEAD);
  out->set_prefill_selection(params.prefill == PrefillSelection::kPerChunk
                                 ? pb::PREFILL_SELECTION_CHUNK
                                 : pb::PREFILL_SELECTION_TOKEN);
  out->set_chunk_size(params.chunk_size);
  out->set_atten_length(params.atten_length);
}

}  // namespace hr::api
