// The scheduler and workers in-process on stories260K: batched serving gives
// the same tokens as single-sequence generation, and preemption, the prefix
// cache, cancellation, deadlines, the bounded queue, drain and a worker's
// lost device (the fault drill) behave as scheduler.h and worker.h promise.
#include "server/scheduler/scheduler.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "server/engine/generator.h"
#include "server/engine/worker.h"
#include "server/metrics/server_metrics.h"
#include "server/engine/served_model.h"
#include "tests/test_util.h"
#include "tests/util/recording_sink.h"

namespace hr {
namespace {

using testing::RecordingSink;

class SchedulerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto loaded = LoadServedModel(testing::SharedDir() + "/models/stories260K.gguf");
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    model_ = new LoadedServedModel(std::move(*loaded));
  }
  static void TearDownTestSuite() { delete model_; }

  // Long-context parameters small enough that stories260K prompts span
  // several chunks and longheads really selects.
  static LongContextParams Params(AttentionPolicy policy = AttentionPolicy::kLongHeads) {
    LongContextParams p;
    p.policy = policy;
    p.chunk_size = 16;
    p.atten_length = 64;
    return p;
  }

  RequestSpec Spec(const std::string& text, int32_t max_tokens,
                   LongContextParams params = Params()) const {
    RequestSpec spec;
    auto ids = model_->tokenizer->Encode(text, /*add_bos=*/true);
    EXPECT_TRUE(ids.ok());
    spec.prompt = *ids;
    spec.generation.max_tokens = max_tokens;
    spec.long_context = params;
    return spec;
  }

  // Single-sequence greedy generation through the same paged attention.
  std::vector<int32_t> Reference(const RequestSpec& spec) const {
    BlockPool pool(model_->model->kv_geometry(),
                   KvDType::kF32, 1LL << 30);
    auto seq = model_->model->NewSequence(spec.long_context, &pool);
    EXPECT_TRUE(seq.ok());
    std::unique_ptr<CausalLm> model = model_->model->NewInstance();
    auto result = Generate(*model, model_->tokenizer.get(), spec.prompt, spec.generation, nullptr,
                           seq->get());
    EXPECT_TRUE(result.ok()) << result.status();
    return result->tokens;
  }

  // Worker 0 runs the fault drill at its `worker0_drill_step`-th step (0: never).
  void StartWorkers(int n, WorkerOptions options, int32_t max_queue = 256,
                    int64_t worker0_drill_step = 0) {
    std::vector<WorkerOptions> each(n, options);
    each[0].fault_drill_step = worker0_drill_step;
    StartWorkers(each, max_queue);
  }
  // One worker per entry, with its options (e.g. KV budgets that differ).
  void StartWorkers(const std::vector<WorkerOptions>& each, int32_t max_queue = 256) {
    metrics_ = std::make_unique<ServerMetrics>(static_cast<int>(each.size()));
    std::vector<Worker*> raw;
    for (size_t i = 0; i < each.size(); ++i) {
      workers_.push_back(std::make_unique<Worker>(static_cast<int>(i), *model_->model, *model_->tokenizer,
                                                  each[i], metrics_.get()));
      raw.push_back(workers_.back().get());
    }
    scheduler_ = std::make_unique<Scheduler>(raw, SchedulerOptions{max_queue}, metrics_.get());
  }
  void Start() {
    for (auto& w : workers_) w->Start();
  }
  void TearDown() override {
    if (scheduler_) scheduler_->Drain(absl::Seconds(60));
    workers_.clear();
  }

  std::shared_ptr<RecordingSink> Submit(RequestSpec spec) {
    auto sink = std::make_shared<RecordingSink>();
    const absl::Status s = scheduler_->Submit(std::move(spec), sink);
    EXPECT_TRUE(s.ok()) << s;
    return sink;
  }

  static std::string Prompt(int i) {
    static const char* kStarts[] = {"Once upon a time, there was a little girl named Lily.",
                                    "Tom had a big red ball. He liked to play with it.",
                                    "The sun was shining and the birds were singing.",
                                    "One day, a cat found a box in the garden."};
    std::string p = kStarts[i % 4];
    for (int r = 0; r < i % 3; ++r) p += " She was very happy and she smiled at her mom.";
    return p;
  }

  static LoadedServedModel* model_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<Scheduler> scheduler_;
};
LoadedServedModel* SchedulerTest::model_ = nullptr;

TEST_F(SchedulerTest, ConcurrentRequestsMatchSingleSequenceGeneration) {
  StartWorkers(2, WorkerOptions{.threads = 1, .step_tokens = 64, .max_running = 16});
  Start();
  std::vector<RequestSpec> specs;
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  for (int i = 0; i < 24; ++i) {
    specs.push_back(Spec(Prompt(i), 24 + i % 7,
                         Params(i % 3 == 0 ? AttentionPolicy::kFull
                                           : i % 3 == 1 ? AttentionPolicy::kWindow
                                                        : AttentionPolicy::kLongHeads)));
    sinks.push_back(Submit(specs.back()));
  }
  for (size_t i = 0; i < sinks.size(); ++i) {
    sinks[i]->Wait();
    ASSERT_TRUE(sinks[i]->status().ok()) << sinks[i]->status();
    EXPECT_EQ(sinks[i]->ids(), Reference(specs[i])) << "request " << i;
    const FinishEvent f = sinks[i]->finish();
    EXPECT_EQ(f.usage.prompt_tokens, static_cast<int64_t>(specs[i].prompt.size()));
    EXPECT_EQ(f.usage.generated_tokens, static_cast<int64_t>(sinks[i]->ids().size()));
    EXPECT_GE(f.timings.total_seconds, f.timings.ttft_seconds);
    // Progress ends at the whole prompt.
    ASSERT_FALSE(sinks[i]->progress().empty());
    EXPECT_EQ(sinks[i]->progress().back(), static_cast<int64_t>(specs[i].prompt.size()));
  }
  EXPECT_EQ(scheduler_->live_requests(), 0);
}

TEST_F(SchedulerTest, PromptLogprobsScoreEveryPromptTokenAsOneForwardPass) {
  StartWorkers(1, WorkerOptions{.threads = 1, .step_tokens = 40, .prefix_cache = false});
  Start();
  std::string text;
  for (int i = 0; i < 6; ++i) text += Prompt(i) + " ";
  RequestSpec spec = Spec(text, 3);
  spec.prompt_logprobs = true;
  auto sink = Submit(spec);
  sink->Wait();
  ASSERT_TRUE(sink->status().ok()) << sink->status();
  const int64_t n = static_cast<int64_t>(spec.prompt.size());
  ASSERT_GT(n, 100);
  const std::vector<float> got = sink->prompt_logprobs();
  ASSERT_EQ(static_cast<int64_t>(got.size()), n - 1);
  EXPECT_EQ(sink->prompt_first(), 1);

  // The same prompt in one forward call with every position's logits.
  BlockPool pool(model_->model->kv_geometry(),
                 KvDType::kF32, 1LL << 30);
  auto seq = model_->model->NewSequence(spec.long_context, &pool);
  ASSERT_TRUE(seq.ok());
  std::unique_ptr<CausalLm> model = model_->model->NewInstance();
  BatchEntry entry{seq->get(), spec.prompt, /*all_logits=*/true};
  std::vector<float> logits;
  ASSERT_TRUE(model->Forward({&entry, 1}, &logits).ok());
  const int64_t vocab = model_->model->config().vocab_size;
  for (int64_t t = 1; t < n; ++t) {
    const float* row = logits.data() + (t - 1) * vocab;
    double z = 0.0;
    const float mx = *std::max_element(row, row + vocab);
    for (int64_t v = 0; v < vocab; ++v) z += std::exp(static_cast<double>(row[v] - mx));
    const double want = row[spec.prompt[t]] - mx - std::log(z);
    EXPECT_NEAR(got[t - 1], want, 1e-4 + 1e-4 * std::fabs(want)) << "position " << t;
  }
}

TEST_F(SchedulerTest, DecodingNeverStarvesANewPrompt) {
  // The budget is spent on decode tokens every step; prompts still advance.
  StartWorkers(1, WorkerOptions{.threads = 1, .step_tokens = 4, .prefix_cache = false});
  Start();
  std::vector<std::shared_ptr<RecordingSink>> decoders;
  for (int i = 0; i < 4; ++i) {
    RequestSpec spec = Spec(Prompt(i), 100000);
    spec.generation.stop_at_eos = false;
    spec.id = "decoder-" + std::to_string(i);
    decoders.push_back(Submit(spec));
  }
  for (auto& d : decoders) d->WaitForTokens(2);
  std::vector<RequestSpec> late;
  std::vector<std::shared_ptr<RecordingSink>> late_sinks;
  for (PrefillSelection mode : {PrefillSelection::kPerToken, PrefillSelection::kPerChunk}) {
    LongContextParams params = Params();
    params.prefill = mode;
    late.push_back(Spec(Prompt(5) + " " + Prompt(6) + " " + Prompt(7), 4, params));
    ASSERT_GT(late.back().prompt.size(), 48u);
    late.back().deadline = absl::Now() + absl::Seconds(30);  // a starved prompt fails, not hangs
    late_sinks.push_back(Submit(late.back()));
  }
  for (auto& sink : late_sinks) {
    sink->Wait();
    ASSERT_TRUE(sink->status().ok()) << sink->status();
  }
  // Both finished while the long generations were still running.
  for (auto& d : decoders) EXPECT_TRUE(d->status().ok() && d->finish_rank() < 0);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(scheduler_->Cancel("decoder-" + std::to_string(i)).ok());
  for (size_t i = 0; i < late.size(); ++i) EXPECT_EQ(late_sinks[i]->ids(), Reference(late[i]));
}

TEST_F(SchedulerTest, APromptAloneGoesInPrefillStepPieces) {
  // Nobody decodes: the prompt takes prefill_step_tokens per step, not
  // step_tokens, and the output is unchanged.
  StartWorkers(1, WorkerOptions{.threads = 1, .step_tokens = 16, .prefill_step_tokens = 64,
                                .prefix_cache = false});
  Start();
  const RequestSpec spec = Spec(Prompt(2) + " " + Prompt(5) + " " + Prompt(8), 3);
  const int64_t n = static_cast<int64_t>(spec.prompt.size());
  ASSERT_GT(n, 130);
  auto sink = Submit(spec);
  sink->Wait();
  ASSERT_TRUE(sink->status().ok()) << sink->status();
  std::vector<int64_t> expected;
  for (int64_t done = 64; done < n; done += 64) expected.push_back(done);
  expected.push_back(n);
  EXPECT_EQ(sink->progress(), expected);
  EXPECT_EQ(sink->ids(), Reference(spec));
}

TEST_F(SchedulerTest, PreemptionUnderATinyCacheKeepsOutputsExact) {
  // Room for a few sequences' blocks only: decoding sequences must preempt.
  WorkerOptions options{.threads = 1, .step_tokens = 64, .max_running = 16, .prefix_cache = false};
  BlockPool probe(model_->model->kv_geometry(),
                  KvDType::kF32, 0);
  options.kv_cache_bytes = 14 * probe.BlockBytes(16);
  StartWorkers(1, options);
  Start();
  std::vector<RequestSpec> specs;
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  for (int i = 0; i < 6; ++i) {
    specs.push_back(Spec(Prompt(i), 40));
    sinks.push_back(Submit(specs.back()));
  }
  int preemptions = 0;
  for (size_t i = 0; i < sinks.size(); ++i) {
    sinks[i]->Wait();
    ASSERT_TRUE(sinks[i]->status().ok()) << sinks[i]->status();
    EXPECT_EQ(sinks[i]->ids(), Reference(specs[i])) << "request " << i;
    preemptions += sinks[i]->finish().timings.preemptions;
  }
  EXPECT_GT(preemptions, 0);
  EXPECT_EQ(workers_[0]->GetLoad().free_bytes, workers_[0]->budget_bytes());
}

TEST_F(SchedulerTest, PrefixCacheReusesADocumentsChunks) {
  StartWorkers(2, WorkerOptions{.threads = 1, .step_tokens = 64});
  Start();
  std::string document;
  for (int i = 0; i < 12; ++i) document += Prompt(i) + " ";
  RequestSpec first = Spec(document + "What did Lily do?", 16);
  auto a = Submit(first);
  a->Wait();
  ASSERT_TRUE(a->status().ok());
  EXPECT_EQ(a->finish().usage.cached_tokens, 0);
  RequestSpec second = Spec(document + "Where was the cat?", 16);
  auto b = Submit(second);
  b->Wait();
  ASSERT_TRUE(b->status().ok());
  const int64_t cached = b->finish().usage.cached_tokens;
  EXPECT_GT(cached, static_cast<int64_t>(first.prompt.size()) / 2);
  EXPECT_EQ(cached % 16, 0);
  EXPECT_EQ(b->ids(), Reference(second));
  EXPECT_EQ(b->progress().front() >= cached, true);
  // Other parameters never share blocks (every layer's K/V depends on them).
  auto c = Submit(Spec(document + "Where was the cat?", 16, Params(AttentionPolicy::kWindow)));
  c->Wait();
  EXPECT_EQ(c->finish().usage.cached_tokens, 0);
}

TEST_F(SchedulerTest, CancelEndsTheRequestAndFreesItsBlocks) {
  StartWorkers(1, WorkerOptions{.threads = 1, .step_tokens = 64, .prefix_cache = false});
  Start();
  RequestSpec spec = Spec(Prompt(1), 100000);
  spec.generation.stop_at_eos = false;
  spec.id = "to-cancel";
  auto sink = Submit(spec);
  sink->WaitForTokens(3);
  ASSERT_TRUE(scheduler_->Cancel("to-cancel").ok());
  sink->Wait();
  EXPECT_EQ(sink->status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(scheduler_->Cancel("to-cancel").code(), absl::StatusCode::kNotFound);
  // The next step released the blocks; a new request proves the worker lives.
  auto next = Submit(Spec(Prompt(2), 4));
  next->Wait();
  EXPECT_TRUE(next->status().ok());
  EXPECT_EQ(workers_[0]->GetLoad().free_bytes, workers_[0]->budget_bytes());
}

TEST_F(SchedulerTest, DeadlineEndsTheRequest) {
  StartWorkers(1, WorkerOptions{.threads = 1});
  Start();
  RequestSpec spec = Spec(Prompt(0), 100000);
  spec.generation.stop_at_eos = false;
  spec.deadline = absl::Now() + absl::Milliseconds(200);
  auto sink = Submit(spec);
  sink->Wait();
  EXPECT_EQ(sink->status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(SchedulerTest, QueueLimitAndDuplicateIdsAndNeverFitting) {
  WorkerOptions options{.threads = 1};
  options.kv_cache_bytes = 1 << 20;
  StartWorkers(1, options, /*max_queue=*/2);  // not started: everything waits
  RequestSpec spec = Spec(Prompt(0), 8);
  spec.id = "a";
  auto a = Submit(spec);
  auto dup = std::make_shared<RecordingSink>();
  EXPECT_EQ(scheduler_->Submit(spec, dup).code(), absl::StatusCode::kAlreadyExists);
  spec.id = "b";
  auto b = Submit(spec);
  spec.id = "c";
  EXPECT_EQ(scheduler_->Submit(spec, std::make_shared<RecordingSink>()).code(),
            absl::StatusCode::kResourceExhausted);
  RequestSpec huge = Spec(Prompt(0), 1 << 20);
  EXPECT_EQ(scheduler_->Submit(huge, std::make_shared<RecordingSink>()).code(),
            absl::StatusCode::kResourceExhausted);
  Start();
  a->Wait();
  b->Wait();
  EXPECT_TRUE(a->status().ok());
  EXPECT_TRUE(b->status().ok());
}

TEST_F(SchedulerTest, DrainStopsAdmittingAndEndsLongRequests) {
  StartWorkers(1, WorkerOptions{.threads = 1});
  Start();
  RequestSpec spec = Spec(Prompt(0), 100000);
  spec.generation.stop_at_eos = false;
  auto sink = Submit(spec);
  sink->WaitForTokens(1);
  EXPECT_EQ(scheduler_->Drain(absl::Milliseconds(50)), 1);
  sink->Wait();
  EXPECT_EQ(sink->status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(scheduler_->Submit(Spec(Prompt(1), 4), std::make_shared<RecordingSink>()).code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(SchedulerTest, HighPriorityIsAdmittedFirst) {
  StartWorkers(1, WorkerOptions{.threads = 1, .step_tokens = 64, .max_running = 1});
  std::vector<std::shared_ptr<RecordingSink>> low;
  for (int i = 0; i < 3; ++i) {
    RequestSpec s = Spec(Prompt(i), 8);
    s.priority = Priority::kLow;
    low.push_back(Submit(s));
  }
  RequestSpec high = Spec(Prompt(3), 8);
  high.priority = Priority::kHigh;
  auto h = Submit(high);
  Start();
  h->Wait();
  for (auto& l : low) l->Wait();
  // One running slot: the high-priority request, submitted last, ran first.
  for (auto& l : low) EXPECT_LT(h->finish_rank(), l->finish_rank());
}

// Worker 0's device fails at its third forward step (the fault drill): its
// request ends UNAVAILABLE, the loss is reported once, before the request
// hears of it, placement passes worker 0 by even where its prefix cache holds
// the prompt, and worker 1 serves the same request with the reference tokens.
TEST_F(SchedulerTest, ALostWorkerFailsItsRequestsAndTheOtherServes) {
  absl::Mutex mu;
  std::vector<std::pair<int, absl::Status>> lost;
  WorkerOptions options{.threads = 1, .step_tokens = 64};
  options.on_device_lost = [&](int worker, const absl::Status& why) {
    absl::MutexLock lock(&mu);
    lost.push_back({worker, why});
  };
  StartWorkers(2, options, 256, /*worker0_drill_step=*/3);
  Start();
  std::string document;
  for (int i = 0; i < 4; ++i) document += Prompt(i) + " ";
  RequestSpec spec = Spec(document, 24);
  spec.generation.stop_at_eos = false;
  // Two prefill steps (the second samples the first token), then the drill.
  ASSERT_GT(spec.prompt.size(), 64u);
  ASSERT_LE(spec.prompt.size(), 128u);

  auto a = Submit(spec);  // equal room: worker 0
  a->Wait();
  EXPECT_EQ(a->status().code(), absl::StatusCode::kUnavailable) << a->status();
  EXPECT_NE(a->status().message().find("worker 0 (cpu) lost its device"), std::string::npos)
      << a->status();
  EXPECT_EQ(a->ids().size(), 1u);
  {
    absl::MutexLock lock(&mu);
    ASSERT_EQ(lost.size(), 1u);
    EXPECT_EQ(lost[0].first, 0);
    EXPECT_EQ(lost[0].second, a->status());
  }
  EXPECT_TRUE(workers_[0]->lost());
  EXPECT_FALSE(workers_[1]->lost());
  EXPECT_EQ(workers_[0]->GetLoad().budget_bytes, 0);
  EXPECT_GT(workers_[0]->CachedPrefixTokens(spec), 0);

  auto b = Submit(spec);
  b->Wait();
  ASSERT_TRUE(b->status().ok()) << b->status();
  EXPECT_EQ(b->finish().usage.cached_tokens, 0);  // worker 1's cache was empty
  const std::vector<int32_t> reference = Reference(spec);
  EXPECT_EQ(b->ids(), reference);
  const std::vector<int32_t> before_loss = a->ids();
  EXPECT_TRUE(std::equal(before_loss.begin(), before_loss.end(), reference.begin()));
  EXPECT_EQ(workers_[1]->GetLoad().free_bytes, workers_[1]->budget_bytes());
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(lost.size(), 1u);
  }
}

// With its only worker lost, the scheduler refuses new requests UNAVAILABLE
// at once, and the lost worker fails what reached it before.
TEST_F(SchedulerTest, WithEveryWorkerLostSubmitIsUnavailable) {
  StartWorkers(1, WorkerOptions{.threads = 1}, 256, /*worker0_drill_step=*/1);
  Start();
  auto a = Submit(Spec(Prompt(0), 8));
  a->Wait();
  EXPECT_EQ(a->status().code(), absl::StatusCode::kUnavailable) << a->status();
  EXPECT_TRUE(a->ids().empty());
  const absl::Status refused = scheduler_->Submit(Spec(Prompt(1), 8), std::make_shared<RecordingSink>());
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
  EXPECT_NE(refused.message().find("every worker has lost its device"), std::string::npos) << refused;
  EXPECT_EQ(scheduler_->live_requests(), 0);
}

// Budgets differ between workers (each sized from its own GPU). A request
// that only the larger cache can hold waits there, even while the smaller
// worker shows more free room; one that no cache can hold is refused
// naming the largest.
TEST_F(SchedulerTest, ARequestGoesToAWorkerWhoseCacheCanHoldIt) {
  WorkerOptions small{.threads = 1};
  small.kv_cache_bytes = 256 << 10;
  WorkerOptions large = small;
  large.kv_cache_bytes = 1 << 20;
  StartWorkers({small, large});
  Start();
  // A long document on the large worker takes most of its cache.
  std::string document;
  for (int i = 0; Spec(document, 1).prompt.size() < 560; ++i) document += Prompt(i) + " ";
  RequestSpec filler = Spec(document, 100);
  filler.generation.stop_at_eos = false;
  filler.id = "filler";
  ASSERT_GT(workers_[0]->BytesNeeded(filler), workers_[0]->budget_bytes());
  ASSERT_LE(workers_[1]->BytesNeeded(filler), workers_[1]->budget_bytes());
  auto f = Submit(filler);
  f->WaitForTokens(2);  // its prompt's blocks are held, the load published after the step
  ASSERT_LT(workers_[1]->GetLoad().free_bytes, workers_[0]->GetLoad().free_bytes);

  const RequestSpec spec = Spec(Prompt(1), 250);
  ASSERT_GT(workers_[0]->BytesNeeded(spec), workers_[0]->budget_bytes());
  ASSERT_LE(workers_[1]->BytesNeeded(spec), workers_[1]->budget_bytes());
  auto sink = Submit(spec);  // waits on worker 1 for the filler's room
  (void)scheduler_->Cancel("filler");
  f->Wait();
  sink->Wait();
  ASSERT_TRUE(sink->status().ok()) << sink->status();
  EXPECT_EQ(sink->ids(), Reference(spec));

  const absl::Status refused = scheduler_->Submit(Spec(Prompt(0), 1 << 16), std::make_shared<RecordingSink>());
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_NE(refused.message().find("the largest worker's cache holds 1048576"), std::string::npos) << refused;
}

// A request only a lost worker's cache could hold is UNAVAILABLE (the
// server needs a restart), not RESOURCE_EXHAUSTED (it never fits).
TEST_F(SchedulerTest, ARequestOnlyALostWorkerCouldHoldIsUnavailable) {
  WorkerOptions large{.threads = 1};
  large.kv_cache_bytes = 1 << 20;
  large.fault_drill_step = 1;
  WorkerOptions small{.threads = 1};
  small.kv_cache_bytes = 256 << 10;
  StartWorkers({large, small});
  Start();
  auto first = Submit(Spec(Prompt(0), 4));  // most room: worker 0, whose device fails at once
  first->Wait();
  EXPECT_EQ(first->status().code(), absl::StatusCode::kUnavailable) << first->status();
  ASSERT_TRUE(workers_[0]->lost());
  const RequestSpec big = Spec(Prompt(1), 250);
  ASSERT_GT(workers_[1]->BytesNeeded(big), workers_[1]->budget_bytes());
  ASSERT_LE(workers_[0]->BytesNeeded(big), workers_[0]->budget_bytes());
  const absl::Status refused = scheduler_->Submit(big, std::make_shared<RecordingSink>());
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
  // What the live worker can hold still runs there.
  auto small_request = Submit(Spec(Prompt(2), 4));
  small_request->Wait();
  EXPECT_TRUE(small_request->status().ok()) << small_request->status();
}

}  // namespace
}  // namespace hr
