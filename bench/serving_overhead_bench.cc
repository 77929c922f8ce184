// serving_overhead_bench: what the gRPC server adds over in-process
// generation, for the same requests at concurrency 1.
//
// Starts headroom-server on the model (one worker, the given threads) and
// builds the same engine in this process (Worker + Scheduler with the same
// options and the api layer's own request conversion), then runs each of
// --requests synthetic requests (random prompt ids, ignore_eos, exactly
// --output_tokens generated) once in-process and once over gRPC, alternating
// which goes first so drift and cache effects fall on both. Reports mean and
// median end-to-end latency and time to first token of both paths and the
// overhead ratio (target: under 5%).
//
//   build/bench/serving_overhead_bench --model /tmp/bench100m.gguf --requests 12
//       --input_tokens 256 --output_tokens 32
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/bench_runner.h"
#include "client/headroom_client.h"
#include "server/api/request_conversion.h"
#include "server/engine/worker.h"
#include "server/longctx/long_context_params.h"
#include "server/metrics/server_metrics.h"
#include "server/engine/served_model.h"
#include "server/scheduler/scheduler.h"
#include "tests/util/server_process.h"

ABSL_FLAG(std::string, model, "", "GGUF model to serve");
ABSL_FLAG(std::string, server_binary, HR_SERVER_BINARY, "headroom-server to start");
ABSL_FLAG(int32_t, requests, 12, "requests per path");
ABSL_FLAG(int32_t, input_tokens, 256, "prompt tokens per request");
ABSL_FLAG(int32_t, output_tokens, 32, "generated tokens per request");
ABSL_FLAG(int32_t, threads, 0, "kernel threads (0 = all cores)");
ABSL_FLAG(uint64_t, seed, 1, "prompt seed");

namespace {

using hr::client::HeadroomClient;
namespace v1 = headroom::v1;

struct Timing {
  double e2e_s = 0.0;
  double ttft_s = 0.0;
};

// Waits for one in-process request, timing it like the client does.
class TimingSink : public hr::RequestSink {
 public:
  explicit TimingSink(absl::Time start) : start_(start) {}
  void OnPrefillProgress(int64_t, int64_t, int64_t) override {}
  void OnTokens(hr::TokenEvent) override {
    absl::MutexLock lock(&mu_);
    if (ttft_ < 0) ttft_ = absl::ToDoubleSeconds(absl::Now() - start_);
  }
  void OnFinish(const hr::FinishEvent&) override { End(absl::OkStatus()); }
  void OnError(const absl::Status& s) override { End(s); }
  absl::StatusOr<Timing> Wait() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&done_));
    if (!status_.ok()) return status_;
    return Timing{e2e_, ttft_};
  }

 private:
  void End(const absl::Status& s) {
    absl::MutexLock lock(&mu_);
    e2e_ = absl::ToDoubleSeconds(absl::Now() - start_);
    status_ = s;
    done_ = true;
  }
  const absl::Time start_;
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  double ttft_ ABSL_GUARDED_BY(mu_) = -1;
  double e2e_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

double Mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}
double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  // Idle OpenMP threads of one path must not spin on the cores the other
  // uses. libgomp reads its environment when it loads, so this process
  // starts itself again with the policy set (the server inherits it).
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  if (policy == nullptr || std::string(policy) != "PASSIVE") {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);
    std::perror("serving_overhead_bench: re-exec with OMP_WAIT_POLICY=PASSIVE");
    return 1;
  }
  absl::SetProgramUsageMessage("gRPC serving overhead versus in-process generation.");
  absl::ParseCommandLine(argc, argv);
  const std::string model_path = absl::GetFlag(FLAGS_model);
  const int threads = absl::GetFlag(FLAGS_threads) > 0 ? absl::GetFlag(FLAGS_threads)
                                                       : static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));

  auto server = hr::testing::ServerProcess::Start(
      {.argv = {absl::GetFlag(FLAGS_server_binary), "--model", model_path, "--grpc_address",
                "127.0.0.1:0", "--metrics_address", "", "--backend", "cpu",  // vs the in-process CPU engine
                "--workers", "1", "--threads_per_worker",
                std::to_string(threads), "--prefix_cache=false"}});
  if (!server.ok()) return Fail(server.status());
  HeadroomClient client((*server)->grpc_address());
  auto info = client.GetModelInfo(hr::client::CallOptions::WithTimeout(absl::Seconds(30)));
  if (!info.ok()) return Fail(info.status());

  // The same engine in this process, configured as the server configures it.
  auto loaded = hr::LoadServedModel(model_path);
  if (!loaded.ok()) return Fail(loaded.status());
  hr::WorkerOptions options;
  options.threads = threads;
  options.kv_cache_bytes = int64_t{1024} << 20;
  options.prefix_cache = false;
  hr::ServerMetrics metrics(1);
  hr::Worker worker(0, *loaded->model, *loaded->tokenizer, options, &metrics);
  worker.Start();
  hr::Scheduler scheduler({&worker}, hr::SchedulerOptions{}, &metrics);
  hr::api::RequestDefaults defaults;
  defaults.tokenizer = loaded->tokenizer.get();
  defaults.model = loaded->model.get();
  defaults.long_context = hr::DefaultLongContextParams(loaded->model->config());

  v1::GenerateRequest base;
  base.mutable_stop()->set_max_tokens(absl::GetFlag(FLAGS_output_tokens));
  auto requests = hr::client::SyntheticRequests(*info, absl::GetFlag(FLAGS_requests),
                                                absl::GetFlag(FLAGS_input_tokens),
                                                absl::GetFlag(FLAGS_seed), base);
  if (!requests.ok()) return Fail(requests.status());

  std::vector<double> local_e2e, local_ttft, grpc_e2e, grpc_ttft;
  for (size_t i = 0; i < requests->size(); ++i) {
    const v1::GenerateRequest& request = (*requests)[i];
    for (int pass = 0; pass < 2; ++pass) {
      const bool local = (pass == 0) == (i % 2 == 0);
      if (local) {
        auto spec = hr::api::ToRequestSpec(request, defaults, absl::InfiniteFuture());
        if (!spec.ok()) return Fail(spec.status());
        const absl::Time start = absl::Now();
        auto sink = std::make_shared<TimingSink>(start);
        if (absl::Status s = scheduler.Submit(std::move(*spec), sink); !s.ok()) return Fail(s);
        auto t = sink->Wait();
        if (!t.ok()) return Fail(t.status());
        local_e2e.push_back(t->e2e_s);
        local_ttft.push_back(t->ttft_s);
      } else {
        const absl::Time start = absl::Now();
        double ttft = -1;
        hr::client::GenerateCallbacks callbacks;
        callbacks.on_delta = [&](const v1::TokenDelta& d) {
          if (ttft < 0 && d.ids_size() > 0) ttft = absl::ToDoubleSeconds(absl::Now() - start);
        };
        auto result = client.Generate(request, callbacks);
        if (!result.ok()) return Fail(result.status());
        grpc_e2e.push_back(absl::ToDoubleSeconds(absl::Now() - start));
        grpc_ttft.push_back(ttft);
      }
    }
  }
  scheduler.Drain(absl::Seconds(10));
  worker.Stop();

  const double overhead = Mean(grpc_e2e) / Mean(local_e2e) - 1.0;
  std::printf("requests %d x (prompt %d, output %d tokens), %d threads, model %s\n",
              absl::GetFlag(FLAGS_requests), absl::GetFlag(FLAGS_input_tokens),
              absl::GetFlag(FLAGS_output_tokens), threads, model_path.c_str());
  std::printf("%-12s %12s %12s %12s %12s\n", "path", "e2e mean s", "e2e median", "ttft mean s",
              "ttft median");
  std::printf("%-12s %12.4f %12.4f %12.4f %12.4f\n", "in-process", Mean(local_e2e),
              Median(local_e2e), Mean(local_ttft), Median(local_ttft));
  std::printf("%-12s %12.4f %12.4f %12.4f %12.4f\n", "grpc", Mean(grpc_e2e), Median(grpc_e2e),
              Mean(grpc_ttft), Median(grpc_ttft));
  std::printf("overhead (mean e2e): %+.2f%%   (median e2e): %+.2f%%\n", 100.0 * overhead,
              100.0 * (Median(grpc_e2e) / Median(local_e2e) - 1.0));
  return 0;
}
