#include "server/engine/worker.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/common/splitmix64.h"
#include "server/common/status.h"
#include "server/engine/logprobs.h"
#include "server/engine/sampler.h"
#include "server/engine/token_output.h"
#include "server/engine/worker_engine.h"
#include "server/kvcache/prefix_cache.h"
#include "server/metrics/server_metrics.h"

namespace hr {
namespace {

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Everything a block's contents depend on besides the tokens: the
// long-context parameters (every layer after the first reads the attention
// output of the one before).
uint64_t PrefixNamespace(const LongContextParams& p) {
  uint64_t h = 0x68656164726f6f6dULL;  // "headroom"
  for (int64_t v : {static_cast<int64_t>(p.policy), static_cast<int64_t>(p.chunk_size),
                    static_cast<int64_t>(p.atten_length), static_cast<int64_t>(p.summary),
                    static_cast<int64_t>(p.gqa), static_cast<int64_t>(p.prefill)}) {
    h = SplitMix64::Mix(h ^ static_cast<uint64_t>(v));
  }
  return h;
}

}  // namespace

// One request on this worker, from queueing to its end.
struct WorkerSequence {
  WorkerSequence(std::shared_ptr<Request> r, const Tokenizer* tokenizer, int64_t order)
      : request(std::move(r)),
        tokens(request->spec().prompt),
        prompt_len(static_cast<int64_t>(tokens.size())),
        order(order),
        prefix_namespace(PrefixNamespace(request->spec().long_context)),
        sampler(request->spec().generation.sampling),
        output(tokenizer, request->spec().prompt, request->spec().generation) {}

  const RequestSpec& spec() const { return request->spec(); }
  int32_t chunk_size() const { return spec().long_context.chunk_size; }
  int64_t kv_length() const { return kv ? kv->length() : 0; }
  // Tokens still to run through the model before the next sample.
  int64_t pending() const { return static_cast<int64_t>(tokens.size()) - kv_length(); }
  // Scheduling order: higher priority first, then older.
  bool Before(const WorkerSequence& o) const {
    if (spec().priority != o.spec().priority) return spec().priority > o.spec().priority;
    return order < o.order;
  }

  std::shared_ptr<Request> request;
  std::unique_ptr<PagedKvSequence> kv;  // null while waiting (or after preemption)
  std::vector<int32_t> tokens;        // the prompt, then the generated ids
  const int64_t prompt_len;
  const int64_t order;                // arrival order on this worker
  const uint64_t prefix_namespace;
  std::vector<uint64_t> prompt_chunk_keys;  // prefix-cache keys of the complete prompt chunks
  int64_t cached_tokens = 0;          // prompt tokens adopted from the prefix cache (first admission)
  Sampler sampler;
  TokenOutput output;
  std::optional<absl::Time> first_scheduled, prompt_done, first_token, last_token;
  int32_t preemptions = 0;
  FinishReason finish_reason = FinishReason::kLength;
  int64_t prompt_logprobs_sent = 0;  // prompt positions below this were scored and sent
};

class Worker::Impl {
 public:
  Impl(int index, const ServedModel& served, std::unique_ptr<WorkerEngine> engine,
       const Tokenizer& tokenizer, const WorkerOptions& options, ServerMetrics* metrics)
      : index_(index),
        served_(served),
        tokenizer_(tokenizer),
        options_(options),
        metrics_(metrics),
        engine_(std::move(engine)),
        pool_(engine_->kv()),
        prefix_(&engine_->kv()) {
    PublishLoad();
  }

  ~Impl() { Stop(); }

  void Start() {
    absl::MutexLock lock(&mu_);
    if (thread_.joinable() || stop_) return;
    thread_ = std::thread([this] { Run(); });
  }

  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    if (thread_.joinable()) thread_.join();
    // Requests queued after the thread ended (or with no thread) end here.
    std::deque<std::shared_ptr<Request>> inbox;
    {
      absl::MutexLock lock(&mu_);
      inbox.swap(inbox_);
    }
    for (auto& r : inbox) Fail(*r, absl::UnavailableError("the worker stopped"));
  }

  void Enqueue(std::shared_ptr<Request> request) {
    absl::MutexLock lock(&mu_);
    load_.waiting += 1;
    load_.waiting_bytes += PromptBytes(request->spec());
    inbox_.push_back(std::move(request));
  }

  void Wake() {
    absl::MutexLock lock(&mu_);
    wake_ = true;
  }

  WorkerLoad GetLoad() const {
    absl::MutexLock lock(&mu_);
    return load_;
  }

  int64_t CachedPrefixTokens(const RequestSpec& spec) const {
    if (!options_.prefix_cache) return 0;
    const int32_t w = spec.long_context.chunk_size;
    return prefix_.MatchedTokens(PrefixNamespace(spec.long_context), spec.prompt, w,
                                 MaxReusableChunks(static_cast<int64_t>(spec.prompt.size()), w));
  }

  int64_t BytesNeeded(const RequestSpec& spec) const {
    const int32_t w = spec.long_context.chunk_size;
    const int64_t tokens = static_cast<int64_t>(spec.prompt.size()) + spec.generation.max_tokens;
    return CeilDiv(tokens, w) * pool_.BlockBytes(w);
  }

  int64_t budget_bytes() const { return pool_.budget_bytes(); }
  int index() const { return index_; }
  bool lost() const {
    absl::MutexLock lock(&mu_);
    return lost_;
  }
  std::string device() const { return engine_->device(); }

 private:
  using SeqPtr = std::unique_ptr<WorkerSequence>;
  struct Planned {
    WorkerSequence* seq;
    int64_t n;  // tokens[kv_length() .. kv_length() + n) run this step
  };

  // At least one prompt token is always computed (its logits start decoding).
  static int64_t MaxReusableChunks(int64_t prompt_len, int32_t w) { return (prompt_len - 1) / w; }

  int64_t PromptBytes(const RequestSpec& spec) const {
    const int32_t w = spec.long_context.chunk_size;
    return CeilDiv(static_cast<int64_t>(spec.prompt.size()), w) * pool_.BlockBytes(w);
  }

  // KV bytes the sequence's next `n` tokens need beyond the blocks it holds.
  int64_t BytesFor(const WorkerSequence& s, int64_t n) const {
    const int32_t w = s.chunk_size();
    const int64_t have = s.kv ? static_cast<int64_t>(s.kv->block_table().size()) : 0;
    return std::max<int64_t>(0, CeilDiv(s.kv_length() + n, w) - have) * pool_.BlockBytes(w);
  }

  // Room for new blocks, counting blocks only the prefix cache holds, less
  // what this step's plan already reserved.
  int64_t FreeBytes() const {
    return pool_.budget_bytes() - pool_.live_bytes() - reserved_bytes_ +
           (options_.prefix_cache ? prefix_.evictable_bytes() : 0);
  }

  void Run() {
    if (options_.threads > 0) omp_set_num_threads(options_.threads);
    if (const absl::Status bound = engine_->BindThread(); !bound.ok()) {
      ServeLost(bound);
      return;
    }
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        if (running_.empty() && waiting_.empty()) {
          mu_.Await(absl::Condition(
              +[](Impl* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) {
                return s->stop_ || s->wake_ || !s->inbox_.empty();
              },
              this));
        }
        if (stop_) break;
        wake_ = false;
        for (auto& r : inbox_) {
          waiting_.push_back(std::make_unique<WorkerSequence>(std::move(r), &tokenizer_, next_order_++));
        }
        inbox_.clear();
      }
      const absl::Status device = Step();
      NotifyRetired();  // publishes the load first
      if (!device.ok()) {
        ServeLost(device);
        return;
      }
    }
    const absl::Status stopped = absl::UnavailableError("the server is shutting down");
    for (auto* list : {&running_, &waiting_}) {
      for (SeqPtr& s : *list) Fail(*s->request, stopped);
      list->clear();
    }
    PublishLoad();
  }

  // The device is lost for good (`why`): tells on_device_lost, then fails
  // every request this worker holds or gets with UNAVAILABLE until Stop().
  void ServeLost(const absl::Status& why) {
    const absl::Status unavailable = absl::UnavailableError(absl::StrCat(
        "worker ", index_, " (", engine_->device(), ") lost its device: ", why.message(),
        "; it serves no request until the server restarts"));
    {
      absl::MutexLock lock(&mu_);
      lost_ = true;
      load_ = WorkerLoad{};  // no room: placement passes this worker by
    }
    if (metrics_ != nullptr) metrics_->SetWorkerUp(index_, false);
    if (options_.on_device_lost) options_.on_device_lost(index_, unavailable);
    for (auto* list : {&running_, &waiting_}) {
      for (SeqPtr& s : *list) Fail(*s->request, unavailable);
      list->clear();
    }
    if (metrics_ != nullptr) metrics_->SetWorkerState(index_, 0, 0, 0, 0, 0.0);
    for (;;) {
      std::deque<std::shared_ptr<Request>> inbox;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](Impl* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) { return s->stop_ || !s->inbox_.empty(); },
            this));
        if (stop_) return;
        inbox.swap(inbox_);
        load_ = WorkerLoad{};
      }
      for (auto& r : inbox) Fail(*r, unavailable);
    }
  }

  // One step; an error when the device is lost (the batch's requests are
  // still in running_ then, for ServeLost).
  absl::Status Step() {
    const absl::Time start = absl::Now();
    DropStopped(start);
    std::vector<Planned> plan = Plan();
    if (!device_lost_.ok()) return device_lost_;
    if (plan.empty()) return absl::OkStatus();
    for (const Planned& p : plan) {
      if (!p.seq->first_scheduled) p.seq->first_scheduled = start;
    }

    std::vector<BatchEntry> batch;
    batch.reserve(plan.size());
    PagedSequenceStats before;
    std::vector<int64_t> first_row(plan.size());  // each entry's first logits row
    int64_t rows = 0;
    for (size_t i = 0; i < plan.size(); ++i) {
      const Planned& p = plan[i];
      const int64_t at = p.seq->kv_length();
      const bool all_logits = WantsPromptLogprobs(*p.seq, at);
      batch.push_back({p.seq->kv.get(), {p.seq->tokens.data() + at, static_cast<size_t>(p.n)}, all_logits});
      first_row[i] = rows;
      rows += all_logits ? p.n : 1;
      Accumulate(&before, p.seq->kv->stats());
    }
    const bool drill = options_.fault_drill_step > 0 && ++forward_steps_ == options_.fault_drill_step;
    // A drill that cannot make its fault ends the worker all the same, saying so.
    if (drill) HR_RETURN_IF_ERROR(engine_->InjectFault());
    const absl::Time forward_start = absl::Now();
    const absl::Status status = engine_->model().Forward(batch, &logits_);
    const double forward_seconds = Seconds(absl::Now() - forward_start);
    if (!status.ok() || drill) HR_RETURN_IF_ERROR(engine_->CheckDevice());
    if (!status.ok()) {
      // KV room was checked while planning and the device still works: a
      // bug, or a device short of memory for the step's scratch. Fail the
      // batch, keep serving.
      const absl::Status internal =
          absl::InternalError(absl::StrCat("forward pass: ", status.message()));
      for (const Planned& p : plan) Retire(Remove(p.seq), internal);
      return absl::OkStatus();
    }
    PagedSequenceStats after;
    int64_t tokens_run = 0;
    for (const Planned& p : plan) {
      Accumulate(&after, p.seq->kv->stats());
      tokens_run += p.n;
    }
    if (metrics_ != nullptr) {
      const ModelConfig& c = served_.config();
      metrics_->ObserveLongContextStep(after.chunks_scored - before.chunks_scored,
                                       after.chunks_selected - before.chunks_selected,
                                       after.keys_attended - before.keys_attended,
                                       tokens_run * c.n_heads * c.n_layers);
    }

    const int64_t vocab = served_.config().vocab_size;
    const absl::Time now = absl::Now();
    std::vector<Draw> draws;  // the sequences that get a token this step, in plan order
    std::vector<WorkerSequence*> finished;
    for (size_t i = 0; i < plan.size(); ++i) {
      WorkerSequence& s = *plan[i].seq;
      if (metrics_ != nullptr) {
        metrics_->ObserveContextLength(s.kv_length());
        const int64_t prompt_run = std::clamp<int64_t>(s.prompt_len - (s.kv_length() - plan[i].n), 0, plan[i].n);
        if (prompt_run > 0) metrics_->AddPromptTokens(prompt_run);
      }
      CachePromptChunks(s);
      if (batch[i].all_logits) {
        EmitPromptLogprobs(s, s.kv_length() - plan[i].n, plan[i].n, logits_.data() + first_row[i] * vocab);
      }
      if (!s.prompt_done) {
        const int64_t processed = std::min(s.kv_length(), s.prompt_len);
        if (processed == s.prompt_len) s.prompt_done = now;
        s.request->sink().OnPrefillProgress(processed, s.prompt_len, s.cached_tokens);
      }
      if (s.pending() > 0) continue;  // more prompt (or recomputation) to go
      const int64_t last_row = first_row[i] + (batch[i].all_logits ? plan[i].n - 1 : 0);
      draws.push_back({&s, std::span<float>(logits_.data() + last_row * vocab, static_cast<size_t>(vocab)), -1, {}});
    }
    SampleAll(draws);
    for (Draw& d : draws) {
      if (Emit(d, now)) finished.push_back(d.seq);
    }
    for (WorkerSequence* s : finished) Retire(Remove(s), absl::OkStatus());
    if (metrics_ != nullptr) {
      metrics_->ObserveStep(Seconds(absl::Now() - start), forward_seconds, tokens_run);
      if (const std::optional<PositionTableStats> pe = served_.position_table_stats()) {
        metrics_->SetPositionTable(pe->positions_encoded, pe->bytes, pe->encode_seconds);
      }
    }
    return absl::OkStatus();
  }

  // Whether a piece starting at `at` still scores prompt tokens not sent.
  static bool WantsPromptLogprobs(const WorkerSequence& s, int64_t at) {
    return s.spec().prompt_logprobs && at + 1 < s.prompt_len &&
           s.prompt_logprobs_sent < s.prompt_len;
  }

  // Streams log p(prompt[t + 1] | ..t) for the piece's positions t = at ..
  // at + n - 1 inside the prompt (logits: [n][vocab], row r for position
  // at + r), skipping what was sent before a preemption.
  void EmitPromptLogprobs(WorkerSequence& s, int64_t at, int64_t n, const float* logits) {
    const int64_t vocab = served_.config().vocab_size;
    const int64_t first = std::max(at + 1, s.prompt_logprobs_sent);
    const int64_t end = std::min(at + n + 1, s.prompt_len);  // one past the last scored position
    if (first >= end) return;
    std::vector<float> out;
    out.reserve(end - first);
    for (int64_t target = first; target < end; ++target) {
      const std::span<const float> row(logits + (target - 1 - at) * vocab, static_cast<size_t>(vocab));
      out.push_back(ComputeLogprobs(row, s.tokens[target], 0).logprob);
    }
    s.prompt_logprobs_sent = end;
    s.request->sink().OnPromptLogprobs(first, std::move(out));
  }

  static void Accumulate(PagedSequenceStats* sum, const PagedSequenceStats& s) {
    sum->chunks_scored += s.chunks_scored;
    sum->chunks_selected += s.chunks_selected;
    sum->keys_attended += s.keys_attended;
  }

  // One sequence's next token, drawn from its logits row.
  struct Draw {
    WorkerSequence* seq;
    std::span<float> logits;  // [vocab]; Sample edits it
    int32_t id = -1;
    std::optional<TokenLogprobs> logprobs;  // when the request asks for them
  };

  // Draws every token of the step: over up to one of the worker's threads
  // per kParallelDraws draws (each sequence has its own sampler and logits
  // row, and the draws touch nothing else, so the tokens are the same in any
  // order). Greedy sampling scans the whole vocabulary: 64 sequences took
  // ~0.5 ms of a step's host work on one thread (bench/results/serving_cpu.md).
  // (No more threads than that: a CUDA worker's team would otherwise be all
  // of its cores, spinning after each step beside gRPC's threads.)
  static void SampleAll(std::span<Draw> draws) {
    constexpr int kParallelDraws = 8;
    const int n = static_cast<int>(draws.size());
    const int team = std::min(omp_get_max_threads(), n / kParallelDraws);
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::max(team, 1)) if (team > 1)
    for (int i = 0; i < n; ++i) {
      Draw& d = draws[i];
      WorkerSequence& s = *d.seq;
      const int32_t n_logprobs = s.spec().logprobs;
      std::vector<float> raw;  // the logits before Sample edits them
      if (n_logprobs > 0) raw.assign(d.logits.begin(), d.logits.end());
      d.id = s.sampler.Sample(d.logits, s.tokens);
      if (n_logprobs > 0) d.logprobs = ComputeLogprobs(raw, d.id, n_logprobs);
    }
  }

  // Appends a drawn token and streams it; true when the request ends.
  bool Emit(Draw& d, absl::Time now) {
    WorkerSequence& s = *d.seq;
    TokenEvent event;
    const int32_t id = d.id;
    if (d.logprobs) event.logprobs.push_back(*std::move(d.logprobs));
    s.tokens.push_back(id);
    TokenOutput::Step out = s.output.Push(id);
    event.ids.push_back(id);
    event.text = std::move(out.text);
    if (metrics_ != nullptr) {
      metrics_->AddGenerationTokens(1);
      if (s.last_token) metrics_->ObserveInterTokenLatency(Seconds(now - *s.last_token));
    }
    if (!s.first_token) s.first_token = now;
    s.last_token = now;
    s.finish_reason = out.reason;
    s.request->sink().OnTokens(std::move(event));
    return out.finished;
  }

  // Ends cancelled and expired requests, freeing their KV blocks.
  void DropStopped(absl::Time now) {
    for (auto* list : {&running_, &waiting_}) {
      for (SeqPtr& s : *list) {
        const absl::StatusCode code = s->request->cancel_code();
        if (code != absl::StatusCode::kOk) {
          Retire(std::move(s), absl::Status(code, code == absl::StatusCode::kCancelled
                                                      ? "the request was cancelled"
                                                      : "the server is draining"));
        } else if (now > s->spec().deadline) {
          Retire(std::move(s), absl::DeadlineExceededError("the request's deadline passed"));
        }
      }
      std::erase(*list, nullptr);
    }
  }

  // Chooses this step's batch (see worker.h), preempting and admitting.
  // Empty only when there is nothing to run.
  std::vector<Planned> Plan() {
    for (;;) {
      std::vector<Planned> plan = PlanOnce();
      if (!plan.empty() || running_.empty() || !device_lost_.ok()) return plan;
      // Every running sequence is stuck for room: give up the newest.
      if (running_.size() == 1) {
        Retire(std::move(running_.front()),
               absl::ResourceExhaustedError("the request no longer fits in the KV cache"));
        running_.clear();
        return plan;
      }
      Preempt(running_.size() - 1);
    }
  }

  std::vector<Planned> PlanOnce() {
    auto by_order = [](const SeqPtr& a, const SeqPtr& b) { return a->Before(*b); };
    std::sort(running_.begin(), running_.end(), by_order);
    std::sort(waiting_.begin(), waiting_.end(), by_order);
    std::vector<Planned> plan;
    int64_t budget = options_.step_tokens;
    reserved_bytes_ = 0;

    // Decoding sequences first, one token each; room comes from preempting
    // the newest, lowest-priority sequences (never one already planned).
    for (size_t i = 0; i < running_.size();) {
      WorkerSequence* s = running_[i].get();
      if (s->pending() != 1) {
        ++i;
        continue;
      }
      while (!MakeRoom(BytesFor(*s, 1)) && running_.size() - 1 > i) Preempt(running_.size() - 1);
      if (!MakeRoom(BytesFor(*s, 1))) {
        Preempt(i);
        continue;
      }
      Add(&plan, s, 1, &budget);
      ++i;
    }
    // With nobody decoding, prompts may take a larger step.
    if (plan.empty()) budget = std::max(options_.step_tokens, options_.prefill_step_tokens);
    // Prefill (and recomputation) pieces. The first one always progresses,
    // so decoding sequences can never starve a prompt.
    bool prefill_planned = false;
    for (size_t i = 0; i < running_.size() && (budget > 0 || !prefill_planned); ++i) {
      WorkerSequence* s = running_[i].get();
      if (s->pending() == 1) continue;  // planned above
      const int64_t n = PieceLength(*s, budget, /*first=*/!prefill_planned);
      if (n > 0) {
        Add(&plan, s, n, &budget);
        prefill_planned = true;
      }
    }
    // Admission: oldest of the highest priority first; stops at the first
    // that does not fit, so a large request is not starved by small ones.
    while (!waiting_.empty() && static_cast<int32_t>(running_.size()) < options_.max_running) {
      const absl::StatusOr<bool> admitted = Admit(*waiting_.front());
      if (!device_lost_.ok()) break;
      if (!admitted.ok()) {
        Retire(std::move(waiting_.front()), admitted.status());
        waiting_.erase(waiting_.begin());
        continue;
      }
      if (!*admitted) {
        if (running_.empty()) {
          // Nothing will ever free room for it (it was checked against the
          // budget at submission, so this means the cache is fragmented).
          Retire(std::move(waiting_.front()),
                 absl::ResourceExhaustedError("the request does not fit in the KV cache"));
          waiting_.erase(waiting_.begin());
          continue;
        }
        break;
      }
      running_.push_back(std::move(waiting_.front()));
      waiting_.erase(waiting_.begin());
      WorkerSequence* s = running_.back().get();
      if (budget <= 0 && prefill_planned) continue;
      const int64_t n = PieceLength(*s, budget, /*first=*/!prefill_planned);
      if (n > 0) {
        Add(&plan, s, n, &budget);
        prefill_planned = true;
      }
    }
    return plan;
  }

  // The longest piece of `s`'s pending tokens that fits the token budget
  // and the KV room (evicting cache blocks for it). Under per-chunk prefill
  // selection (one selection shared by a chunk's queries in one forward
  // call) a piece must end on a chunk boundary unless it ends the pending
  // tokens; per-token selection gives the same result for any split. The
  // `first` prefill piece of a step gets at least up to the next chunk
  // boundary, even over the budget.
  int64_t PieceLength(WorkerSequence& s, int64_t budget, bool first) {
    const int32_t w = s.chunk_size();
    const int64_t start = s.kv_length();
    const bool aligned = s.spec().long_context.prefill == PrefillSelection::kPerChunk;
    auto align = [&](int64_t n) {
      return aligned && n < s.pending() ? (start + n) / w * w - start : n;
    };
    int64_t n = align(std::min(s.pending(), std::max<int64_t>(budget, 0)));
    if (n <= 0 && first) n = std::min(s.pending(), w - start % w);
    // Fit the KV room: whole blocks from the free bytes.
    const int64_t block_bytes = pool_.BlockBytes(w);
    const int64_t have = static_cast<int64_t>(s.kv->block_table().size());
    const int64_t max_blocks = have + FreeBytes() / block_bytes;
    if (CeilDiv(start + n, w) > max_blocks) n = align(std::min(n, max_blocks * w - start));
    if (n <= 0 || !MakeRoom(BytesFor(s, n))) return 0;
    return n;
  }

  // Evicts prefix-cache blocks until `bytes` more than the plan's
  // reservation can be allocated.
  bool MakeRoom(int64_t bytes) {
    const int64_t need = reserved_bytes_ + bytes;
    if (pool_.budget_bytes() - pool_.live_bytes() >= need) return true;
    return options_.prefix_cache && prefix_.EvictUntil(need);
  }

  void Add(std::vector<Planned>* plan, WorkerSequence* s, int64_t n, int64_t* budget) {
    reserved_bytes_ += BytesFor(*s, n);
    plan->push_back({s, n});
    *budget -= n;
  }

  // Preempts the last running sequence unless it is `keep`; false when
  // there is nothing else to preempt.
  bool PreemptLast(const WorkerSequence* keep) {
    if (running_.empty()) return false;
    const bool is_keep = running_.back().get() == keep;
    Preempt(running_.size() - 1);
    return !is_keep;
  }

  // Frees running_[i]'s KV and queues it again; it recomputes its prompt and
  // generated tokens when readmitted (same sampler state, nothing re-sent).
  void Preempt(size_t i) {
    SeqPtr s = std::move(running_[i]);
    running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
    s->kv.reset();
    s->prompt_chunk_keys.clear();
    s->preemptions += 1;
    if (metrics_ != nullptr) metrics_->AddPreemptions(1);
    waiting_.insert(waiting_.begin(), std::move(s));
  }

  // Gives a waiting sequence its KV (adopting cached prompt chunks) when the
  // rest of its tokens fit. False (and no change) otherwise; an error when
  // the engine cannot start a sequence (a device out of memory for the
  // sequence's own buffers: parameters are validated before submission).
  absl::StatusOr<bool> Admit(WorkerSequence& s) {
    const RequestSpec& spec = s.spec();
    absl::StatusOr<std::unique_ptr<PagedKvSequence>> kv = engine_->NewSequence(
        spec.long_context,
        static_cast<int64_t>(spec.prompt.size()) + spec.generation.max_tokens);
    if (!kv.ok()) {
      // A device short of memory for the sequence's own buffers: wait for
      // running sequences to free some; with none running, it never will.
      if (absl::IsResourceExhausted(kv.status()) && !running_.empty()) return false;
      // Any other failure may be the device's (one lost while idle fails
      // here first): then the request waits for ServeLost.
      if (absl::Status device = engine_->CheckDevice(); !device.ok()) {
        device_lost_ = std::move(device);
        return false;
      }
      return kv.status();
    }
    const int32_t w = s.chunk_size();
    const int64_t reusable = MaxReusableChunks(static_cast<int64_t>(s.tokens.size()), w);
    std::vector<int32_t> blocks;
    if (options_.prefix_cache && reusable > 0) {
      blocks = prefix_.Lookup(s.prefix_namespace, s.tokens, w, reusable);
      (*kv)->AdoptPrefix(blocks);
    }
    s.kv = std::move(*kv);
    if (BytesFor(s, s.pending()) > FreeBytes()) {
      s.kv.reset();
      return false;
    }
    const int64_t prompt_chunks = std::min<int64_t>(static_cast<int64_t>(blocks.size()), s.prompt_len / w);
    if (metrics_ != nullptr && s.preemptions == 0) {
      metrics_->ObservePrefixLookup(reusable, static_cast<int64_t>(blocks.size()),
                                    static_cast<int64_t>(blocks.size()) * w);
    }
    if (s.preemptions == 0) s.cached_tokens = static_cast<int64_t>(blocks.size()) * w;
    // Keys of the adopted prompt chunks, so later chunks chain onto them.
    uint64_t parent = s.prefix_namespace;
    for (int64_t c = 0; c < prompt_chunks; ++c) {
      parent = PrefixCache::ChunkKey(parent, {s.tokens.data() + c * w, static_cast<size_t>(w)});
      s.prompt_chunk_keys.push_back(parent);
    }
    return true;
  }

  // Lists the sequence's newly completed prompt chunks in the prefix cache.
  void CachePromptChunks(WorkerSequence& s) {
    if (!options_.prefix_cache) return;
    const int32_t w = s.chunk_size();
    const int64_t complete = std::min(s.kv_length(), s.prompt_len) / w;
    const std::vector<int32_t>& table = s.kv->block_table();
    while (static_cast<int64_t>(s.prompt_chunk_keys.size()) < complete) {
      const int64_t c = static_cast<int64_t>(s.prompt_chunk_keys.size());
      const uint64_t parent = c == 0 ? s.prefix_namespace : s.prompt_chunk_keys.back();
      s.prompt_chunk_keys.push_back(
          prefix_.Insert(parent, {s.tokens.data() + c * w, static_cast<size_t>(w)}, table[c]));
    }
  }

  void Succeed(WorkerSequence& s, absl::Time now) {
    FinishEvent f;
    f.reason = s.finish_reason;
    f.usage.prompt_tokens = s.prompt_len;
    f.usage.cached_tokens = s.cached_tokens;
    f.usage.generated_tokens = static_cast<int64_t>(s.tokens.size()) - s.prompt_len;
    const absl::Time arrival = s.request->arrival();
    const absl::Time scheduled = s.first_scheduled.value_or(now);
    f.timings.queue_seconds = Seconds(scheduled - arrival);
    f.timings.prefill_seconds = Seconds(s.prompt_done.value_or(now) - scheduled);
    f.timings.ttft_seconds = Seconds(s.first_token.value_or(now) - arrival);
    f.timings.decode_seconds = Seconds(s.last_token.value_or(now) - s.first_token.value_or(now));
    f.timings.total_seconds = Seconds(now - arrival);
    f.timings.preemptions = s.preemptions;
    if (metrics_ != nullptr) {
      metrics_->RequestSucceeded(FinishReasonName(f.reason), f.usage.prompt_tokens,
                                 f.usage.generated_tokens, f.timings.queue_seconds,
                                 f.timings.prefill_seconds, f.timings.ttft_seconds,
                                 f.timings.total_seconds);
    }
    s.request->sink().OnFinish(f);
  }

  void Fail(const Request& r, const absl::Status& status) {
    if (metrics_ != nullptr) metrics_->RequestFailed(status.code());
    r.sink().OnError(status);
  }

  // Takes a sequence out of the running batch.
  SeqPtr Remove(WorkerSequence* s) {
    auto it = std::find_if(running_.begin(), running_.end(),
                           [&](const SeqPtr& p) { return p.get() == s; });
    HR_CHECK(it != running_.end(), "removing a sequence that is not running");
    SeqPtr out = std::move(*it);
    running_.erase(it);
    return out;
  }

  // Ends a request: its KV blocks go back to the pool (or stay in the
  // prefix cache) now; its sink hears of it in NotifyRetired(), after the
  // load is published, so a client that sees the end sees the room too.
  void Retire(SeqPtr s, absl::Status status) {
    s->kv.reset();
    retired_.push_back({std::move(s), std::move(status)});
  }

  void NotifyRetired() {
    PublishLoad();
    const absl::Time now = absl::Now();
    for (auto& [s, status] : retired_) {
      if (status.ok()) {
        Succeed(*s, s->last_token.value_or(now));
      } else {
        Fail(*s->request, status);
      }
    }
    retired_.clear();
  }

  void PublishLoad() {
    WorkerLoad load;
    load.budget_bytes = pool_.budget_bytes();
    load.free_bytes = FreeBytes();
    load.running = static_cast<int64_t>(running_.size());
    int64_t waiting_bytes = 0;
    for (const SeqPtr& s : waiting_) waiting_bytes += PromptBytes(s->spec());
    // In blocks of the store's one chunk size, or of 256 tokens where sizes mix.
    const int32_t w = pool_.fixed_chunk_size() > 0 ? pool_.fixed_chunk_size() : 256;
    const int64_t blocks_total = pool_.budget_bytes() / pool_.BlockBytes(w);
    {
      absl::MutexLock lock(&mu_);
      for (const auto& r : inbox_) waiting_bytes += PromptBytes(r->spec());
      load.waiting = static_cast<int64_t>(waiting_.size() + inbox_.size());
      load.waiting_bytes = waiting_bytes;
      load_ = load;
    }
    if (metrics_ != nullptr) {
      metrics_->SetWorkerState(index_, load.running, load.waiting, pool_.blocks_in_use(),
                               blocks_total,
                               static_cast<double>(pool_.live_bytes()) /
                                   static_cast<double>(std::max<int64_t>(1, pool_.budget_bytes())));
    }
  }

  const int index_;
  const ServedModel& served_;
  const Tokenizer& tokenizer_;
  const WorkerOptions options_;
  ServerMetrics* const metrics_;

  // Owned by the worker thread.
  const std::unique_ptr<WorkerEngine> engine_;
  KvBlockStore& pool_;  // engine_->kv()
  PrefixCache prefix_;  // after engine_: released before it
  std::vector<SeqPtr> running_;
  std::vector<SeqPtr> waiting_;
  std::vector<float> logits_;
  int64_t next_order_ = 0;
  int64_t reserved_bytes_ = 0;  // KV bytes the plan being built will allocate
  int64_t forward_steps_ = 0;   // counted for the fault drill only
  absl::Status device_lost_;    // set by Admit when the device is found lost
  std::vector<std::pair<SeqPtr, absl::Status>> retired_;  // ended this step, not yet told

  mutable absl::Mutex mu_;
  std::deque<std::shared_ptr<Request>> inbox_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  bool lost_ ABSL_GUARDED_BY(mu_) = false;
  WorkerLoad load_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

namespace {

std::unique_ptr<WorkerEngine> CpuEngine(int index, const ServedModel& model,
                                        const WorkerOptions& options) {
  absl::StatusOr<std::unique_ptr<WorkerEngine>> engine =
      model.NewWorkerEngine(index, {options.kv_dtype, options.kv_cache_bytes});
  HR_CHECK(engine.ok(), "this constructor is for models whose engines cannot fail to start");
  return std::move(*engine);
}

}  // namespace

Worker::Worker(int index, const ServedModel& model, const Tokenizer& tokenizer,
               const WorkerOptions& options, ServerMetrics* metrics)
    : Worker(index, model, CpuEngine(index, model, options), tokenizer, options, metrics) {}
Worker::Worker(int index, const ServedModel& model, std::unique_ptr<WorkerEngine> engine,
               const Tokenizer& tokenizer, const WorkerOptions& options, ServerMetrics* metrics)
    : impl_(std::make_unique<Impl>(index, model, std::move(engine), tokenizer, options, metrics)) {}
Worker::~Worker() = default;
void Worker::Start() { impl_->Start(); }
void Worker::Stop() { impl_->Stop(); }
void Worker::Enqueue(std::shared_ptr<Request> request) { impl_->Enqueue(std::move(request)); }
void Worker::Wake() { impl_->Wake(); }
WorkerLoad Worker::GetLoad() const { return impl_->GetLoad(); }
int64_t Worker::CachedPrefixTokens(const RequestSpec& spec) const {
  return impl_->CachedPrefixTokens(spec);
}
int64_t Worker::BytesNeeded(const RequestSpec& spec) const { return impl_->BytesNeeded(spec); }
int64_t Worker::budget_bytes() const { return impl_->budget_bytes(); }
int Worker::index() const { return impl_->index(); }
bool Worker::lost() const { return impl_->lost(); }
std::string Worker::device() const { return impl_->device(); }

}  // namespace hr
