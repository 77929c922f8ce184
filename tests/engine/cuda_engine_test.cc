// The CUDA backend behind the worker (server/engine/cuda_engine.h) on
// stories260K. Everywhere: a CUDA-served model refuses another chunk size
// (UNIMPLEMENTED) and, without a device, its worker engine is UNAVAILABLE
// (the server then exits with that message). With a GPU (ctest label `gpu`;
// skipped with a message otherwise): workers on the device, FP32, give the
// greedy tokens of the CPU workers under every policy, a repeated prompt
// reuses the device prefix cache with the same tokens, and a device fault
// (the drill's trap) loses the worker cleanly.
#include "server/engine/cuda_engine.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/engine/worker.h"
#include "server/metrics/server_metrics.h"
#include "server/model/loader.h"
#include "server/scheduler/scheduler.h"
#include "tests/test_util.h"
#include "tests/util/recording_sink.h"

namespace hr {
namespace {

using testing::RecordingSink;

constexpr int32_t kChunk = 16;

class CudaEngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto loaded = LoadModel(testing::SharedDir() + "/models/stories260K.gguf");
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    loaded_ = new LoadedModel(std::move(*loaded));
  }
  static void TearDownTestSuite() { delete loaded_; }

  static absl::StatusOr<std::unique_ptr<ServedModel>> Serve() {
    return ServeLlamaCuda(loaded_->weights, {kChunk, /*bf16_weights=*/false});
  }

  static LongContextParams Params(AttentionPolicy policy) {
    LongContextParams p;
    p.policy = policy;
    p.chunk_size = kChunk;
    p.atten_length = 64;
    return p;
  }

  // Greedy tokens of `prompts` through one worker on `engine` (a scheduler
  // in front, as in the server); each request's sink.
  static std::vector<std::shared_ptr<RecordingSink>> Run(const ServedModel& model,
                                                        std::unique_ptr<WorkerEngine> engine,
                                                        const std::vector<RequestSpec>& specs) {
    ServerMetrics metrics(1);
    WorkerOptions options;
    Worker worker(0, model, std::move(engine), *loaded_->tokenizer, options, &metrics);
    Scheduler scheduler({&worker}, SchedulerOptions{}, &metrics);
    worker.Start();
    std::vector<std::shared_ptr<RecordingSink>> sinks;
    for (const RequestSpec& spec : specs) {
      sinks.push_back(std::make_shared<RecordingSink>());
      const absl::Status submitted = scheduler.Submit(spec, sinks.back());
      EXPECT_TRUE(submitted.ok()) << submitted;
      if (submitted.ok()) sinks.back()->Wait();  // one after another: the second can hit the prefix cache
    }
    scheduler.Drain(absl::Seconds(60));
    return sinks;
  }

  static RequestSpec Spec(const std::string& text, LongContextParams params) {
    RequestSpec spec;
    auto ids = loaded_->tokenizer->Encode(text, /*add_bos=*/true);
    EXPECT_TRUE(ids.ok());
    spec.prompt = *ids;
    spec.generation.max_tokens = 48;
    spec.generation.stop_at_eos = false;  // 48 tokens whatever the model says
    spec.long_context = params;
    return spec;
  }

  static LoadedModel* loaded_;
};
LoadedModel* CudaEngineTest::loaded_ = nullptr;

TEST_F(CudaEngineTest, AnotherChunkSizeIsUnimplemented) {
  if (!CudaBackendCompiled()) {
    const auto served = Serve();
    ASSERT_FALSE(served.ok());
    EXPECT_EQ(served.status().code(), absl::StatusCode::kUnavailable);
    GTEST_SKIP() << "built without the CUDA backend: ServeLlamaCuda is UNAVAILABLE";
  }
  auto served = Serve();
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ((*served)->backend(), "cuda");
  EXPECT_TRUE((*served)->CheckLongContext(Params(AttentionPolicy::kLongHeads), 4096).ok());
  LongContextParams other = Params(AttentionPolicy::kLongHeads);
  other.chunk_size = 32;
  const absl::Status s = (*served)->CheckLongContext(other, 4096);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("chunks of 16 tokens"), std::string::npos) << s;
}

TEST_F(CudaEngineTest, WithoutADeviceTheEngineIsUnavailable) {
  if (!CudaBackendCompiled()) GTEST_SKIP() << "built without the CUDA backend";
  if (VisibleCudaDevices() > 0) GTEST_SKIP() << "a CUDA device is visible";
  auto served = Serve();
  ASSERT_TRUE(served.ok()) << served.status();
  auto engine = (*served)->NewWorkerEngine(0, {KvDType::kF32, 64 << 20});
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kUnavailable) << engine.status();
}

TEST_F(CudaEngineTest, GpuWorkersGiveTheCpuWorkersGreedyTokensAndReuseThePrefixCache) {
  if (VisibleCudaDevices() == 0) {
    GTEST_SKIP() << "no CUDA device visible: GPU test skipped (run on a GPU machine)";
  }
  auto cuda = Serve();
  ASSERT_TRUE(cuda.ok()) << cuda.status();
  const std::unique_ptr<ServedModel> cpu = ServeLlama(loaded_->weights);
  std::string text = "Once upon a time, there was a little girl named Lily.";
  for (int r = 0; r < 8; ++r) text += " She was very happy and she smiled at her mom.";
  for (AttentionPolicy policy : {AttentionPolicy::kFull, AttentionPolicy::kWindow, AttentionPolicy::kLongHeads}) {
    SCOPED_TRACE(std::string(PolicyName(policy)));
    // The same prompt twice: the second adopts the first's complete chunks.
    const std::vector<RequestSpec> specs = {Spec(text, Params(policy)), Spec(text, Params(policy))};
    ASSERT_GT(specs[0].prompt.size(), 4u * kChunk);
    auto engine = (*cuda)->NewWorkerEngine(0, {KvDType::kF32, 64 << 20});
    ASSERT_TRUE(engine.ok()) << engine.status();
    EXPECT_EQ((*engine)->device().rfind("cuda:0", 0), 0u) << (*engine)->device();
    const auto gpu_sinks = Run(**cuda, std::move(*engine), specs);
    const auto cpu_sinks = Run(*cpu, *cpu->NewWorkerEngine(0, {KvDType::kF32, 64 << 20}), specs);
    for (size_t i = 0; i < specs.size(); ++i) {
      ASSERT_TRUE(gpu_sinks[i]->status().ok()) << gpu_sinks[i]->status();
      ASSERT_TRUE(cpu_sinks[i]->status().ok()) << cpu_sinks[i]->status();
      EXPECT_EQ(gpu_sinks[i]->ids(), cpu_sinks[i]->ids()) << "request " << i;
      EXPECT_EQ(gpu_sinks[i]->ids().size(), 48u);
    }
    EXPECT_EQ(gpu_sinks[0]->finish().usage.cached_tokens, 0);
    EXPECT_GT(gpu_sinks[1]->finish().usage.cached_tokens, 0);
    EXPECT_EQ(gpu_sinks[1]->finish().usage.cached_tokens, cpu_sinks[1]->finish().usage.cached_tokens);
  }
}

// The body of the device-fault test, in a child process: worker 0's device
// fails at its second step (the fault drill traps a kernel). Prints the
// request's error on stderr; exits 0 when every expectation holds, 1 (saying
// which failed) otherwise.
void LoseTheDeviceThenExit(const ServedModel& cuda, const Tokenizer& tokenizer, RequestSpec spec) {
  auto engine = cuda.NewWorkerEngine(0, {KvDType::kF32, 64 << 20});
  if (!engine.ok()) {
    std::fprintf(stderr, "no engine: %s\n", engine.status().ToString().c_str());
    std::exit(1);
  }
  std::atomic<int> reports{0};
  std::string reported;  // written on the worker's thread before the sink hears
  WorkerOptions options;
  options.fault_drill_step = 2;
  options.on_device_lost = [&](int, const absl::Status& why) {
    reported = std::string(why.message());
    reports.fetch_add(1);
  };
  ServerMetrics metrics(1);
  std::vector<std::string> failed;
  {
    Worker worker(0, cuda, std::move(*engine), tokenizer, options, &metrics);
    Scheduler scheduler({&worker}, SchedulerOptions{}, &metrics);
    worker.Start();
    auto sink = std::make_shared<RecordingSink>();
    if (!scheduler.Submit(spec, sink).ok()) failed.push_back("submit");
    sink->Wait();
    std::fprintf(stderr, "%s\n", sink->status().ToString().c_str());
    if (sink->status().code() != absl::StatusCode::kUnavailable) failed.push_back("code");
    if (sink->ids().size() != 1) failed.push_back("one token (the prefill's) before the loss");
    if (reports.load() != 1 || reported != sink->status().message()) failed.push_back("one report");
    if (!worker.lost()) failed.push_back("lost()");
    if (scheduler.Submit(spec, std::make_shared<RecordingSink>()).code() != absl::StatusCode::kUnavailable) {
      failed.push_back("refused");
    }
    scheduler.Drain(absl::Seconds(10));
  }  // the worker and its engine end on the lost context
  for (const std::string& f : failed) std::fprintf(stderr, "FAILED: %s\n", f.c_str());
  std::exit(failed.empty() ? 0 : 1);
}

// A sticky device fault: the worker's request ends UNAVAILABLE naming the
// CUDA error, on_device_lost hears of it first, the scheduler refuses new
// requests, and the lost context's engine is destroyed without a hang or a
// crash. In a child process (a death test re-executes this binary): the
// context stays lost for the rest of its process.
TEST_F(CudaEngineTest, ADeviceFaultLosesTheWorkerAndItsProcessStillEndsCleanly) {
  if (VisibleCudaDevices() == 0) {
    GTEST_SKIP() << "no CUDA device visible: GPU test skipped (run on a GPU machine)";
  }
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto cuda = Serve();
  ASSERT_TRUE(cuda.ok()) << cuda.status();
  const RequestSpec spec = Spec("Once upon a time, there was a little girl named Lily.",
                                Params(AttentionPolicy::kLongHeads));
  EXPECT_EXIT(LoseTheDeviceThenExit(**cuda, *loaded_->tokenizer, spec), ::testing::ExitedWithCode(0),
              "UNAVAILABLE: worker 0 \\(cuda:0 .*lost its device: CUDA error cuda");
}

}  // namespace
}  // namespace hr
