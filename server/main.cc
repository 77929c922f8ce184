// headroom-server: the Headroom gRPC inference server (flags and wiring only).
//
// Serves headroom.v1.Headroom (proto/headroom/v1/headroom.proto), gRPC's
// standard health service and server reflection on --grpc_address, and
// Prometheus metrics on --metrics_address. Once listening it prints one line
// on stdout:
//   headroom-server: serving grpc=HOST:PORT metrics=HOST:PORT
// (nothing after "metrics=" when --metrics_address is empty). SIGTERM or SIGINT drains:
// health turns NOT_SERVING, new requests get UNAVAILABLE, running ones get
// --drain_timeout_s to finish (then end with UNAVAILABLE), and the process
// exits 0. A worker that loses its device (a sticky GPU fault) turns health
// NOT_SERVING for good (server/api/serving_health.h) while the other workers
// keep serving. A model or flag error exits 1 with the message on stderr.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "server/api/headroom_service.h"
#include "server/api/serving_health.h"
#include "server/common/status.h"
#include "server/common/task_thread.h"
#include "server/engine/backend_choice.h"
#include "server/engine/cuda_engine.h"
#include "server/engine/worker.h"
#include "server/longctx/long_context_params.h"
#include "server/metrics/server_metrics.h"
#include "server/engine/served_model.h"
#include "server/scheduler/scheduler.h"

ABSL_FLAG(std::string, model, "models/demo.gguf",
          "GGUF file, Hugging Face LLaMA directory, or SeqPE model directory to serve");
ABSL_FLAG(std::string, grpc_address, "0.0.0.0:50051",
          "host:port for the gRPC API, health and reflection (port 0 picks a free port)");
ABSL_FLAG(std::string, metrics_address, "0.0.0.0:9090",
          "host:port for Prometheus /metrics (port 0 picks a free port; empty disables)");
ABSL_FLAG(std::string, backend, "auto",
          "where the workers run: auto (CUDA when this build has it, a GPU is visible and the "
          "model runs there; else the CPU) | cpu | cuda");
ABSL_FLAG(std::string, cuda_weights, "bf16",
          "CUDA weight matrices: bf16 (FP32 accumulation; half precision is what vLLM serves FP32 "
          "checkpoints in) | f32 (the exact path: with --kv_dtype f32, the CPU's results)");
ABSL_FLAG(int32_t, workers, 0,
          "workers, each with its own model instance and KV cache (0: 1 on the CPU, one per "
          "visible GPU on CUDA; CUDA runs at most one per GPU)");
ABSL_FLAG(int32_t, threads_per_worker, 0, "kernel threads per worker (0 = cores / workers)");
ABSL_FLAG(int64_t, kv_cache_mb, 0,
          "KV cache budget per worker (per GPU on CUDA) in MiB (blocks + summaries); 0 = auto: "
          "1024 on the CPU, on CUDA what --gpu_memory_fraction of each GPU leaves after the "
          "weights and the working memory of the largest step");
ABSL_FLAG(double, gpu_memory_fraction, 0.9,
          "with --kv_cache_mb 0 on CUDA: the share of each GPU's memory the server may take "
          "(weights, KV cache, working memory), in (0, 1]");
ABSL_FLAG(std::string, kv_dtype, "auto",
          "KV cache storage: auto (bf16 on CUDA, what the tensor-core attention reads; f32 on the "
          "CPU) | f32 | f16 | bf16");
ABSL_FLAG(int32_t, max_queue, 256,
          "requests waiting for admission at most; more get RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, max_input_tokens, 131072,
          "prompt tokens per request at most; more get OUT_OF_RANGE");
ABSL_FLAG(int32_t, max_new_tokens, 4096, "largest max_tokens a request may ask for");
ABSL_FLAG(int32_t, default_max_tokens, 256, "max_tokens of a request that sets none");
ABSL_FLAG(int32_t, step_tokens, 512, "tokens per forward step at most (prefill + decode)");
ABSL_FLAG(int32_t, prefill_step_tokens, 2048,
          "tokens per forward step at most when no request is decoding (long prompts alone go "
          "in larger pieces: LongHeads prefill reads each KV chunk once per piece; 0 = "
          "--step_tokens)");
ABSL_FLAG(int32_t, max_running, 64, "sequences in a worker's batch at most");
ABSL_FLAG(bool, prefix_cache, true, "reuse the KV blocks of complete prompt chunks across requests");
ABSL_FLAG(std::string, policy, "longheads", "default attention policy: full | window | longheads");
ABSL_FLAG(int32_t, chunk_size, 0, "default tokens per chunk / KV block (0 = atten_length / 8)");
ABSL_FLAG(int32_t, atten_length, 0,
          "default attention window per head in tokens (0 = the model's trained context, at "
          "most 4096)");
ABSL_FLAG(std::string, summary, "bound", "default chunk summary: longheads | bound | mean");
ABSL_FLAG(std::string, gqa_selection, "query_head",
          "default GQA selection: query_head | kv_head");
ABSL_FLAG(std::string, prefill_selection, "token", "default prefill selection: token | chunk");
ABSL_FLAG(int32_t, drain_timeout_s, 30,
          "on SIGTERM/SIGINT, seconds running requests get to finish before they end with "
          "UNAVAILABLE");
ABSL_FLAG(int64_t, device_fault_drill_step, 0,
          "fault drill: worker 0's device fails just before its N-th forward step (CUDA: a "
          "kernel traps, losing the context as a real fault does; CPU: the engine reports its "
          "device lost), to rehearse alerts and restarts. 0 = off");

namespace {

constexpr char kServerVersion[] = "0.1.0";
// How long Server::Shutdown waits for calls still open after the drain
// (clients that stopped reading, health watches) before cancelling them.
constexpr auto kShutdownGrace = std::chrono::seconds(5);

absl::StatusOr<hr::LongContextParams> LongContextFromFlags(const hr::ModelConfig& config) {
  hr::LongContextParams p = hr::DefaultLongContextParams(config, absl::GetFlag(FLAGS_atten_length));
  HR_ASSIGN_OR_RETURN(p.policy, hr::ParsePolicy(absl::GetFlag(FLAGS_policy)));
  HR_ASSIGN_OR_RETURN(p.summary, hr::ParseSummaryKind(absl::GetFlag(FLAGS_summary)));
  HR_ASSIGN_OR_RETURN(p.gqa, hr::ParseGqaSelection(absl::GetFlag(FLAGS_gqa_selection)));
  HR_ASSIGN_OR_RETURN(p.prefill, hr::ParsePrefillSelection(absl::GetFlag(FLAGS_prefill_selection)));
  if (absl::GetFlag(FLAGS_chunk_size) != 0) p.chunk_size = absl::GetFlag(FLAGS_chunk_size);
  HR_RETURN_IF_ERROR(p.Validate());
  return p;
}

// --kv_dtype on `backend`, "auto" resolved.
std::string KvDTypeName(hr::Backend backend) {
  const std::string name = absl::GetFlag(FLAGS_kv_dtype);
  if (name != "auto") return name;
  return backend == hr::Backend::kCuda ? "bf16" : "f32";
}

absl::StatusOr<hr::KvDType> ParseKvDType(const std::string& name) {
  if (name == "f32") return hr::KvDType::kF32;
  if (name == "f16") return hr::KvDType::kF16;
  if (name == "bf16") return hr::KvDType::kBF16;
  return absl::InvalidArgumentError(
      absl::StrCat("--kv_dtype must be auto, f32, f16 or bf16, got '", name, "'"));
}

absl::Status CheckFlags() {
  auto at_least = [](const char* flag, int64_t value, int64_t min) {
    return value >= min ? absl::OkStatus()
                        : absl::InvalidArgumentError(
                              absl::StrCat("--", flag, " must be >= ", min, ", got ", value));
  };
  HR_RETURN_IF_ERROR(at_least("workers", absl::GetFlag(FLAGS_workers), 0));
  const std::string backend = absl::GetFlag(FLAGS_backend);
  if (backend != "auto" && backend != "cpu" && backend != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrCat("--backend must be auto, cpu or cuda, got '", backend, "'"));
  }
  const std::string cuda_weights = absl::GetFlag(FLAGS_cuda_weights);
  if (cuda_weights != "f32" && cuda_weights != "bf16") {
    return absl::InvalidArgumentError(
        absl::StrCat("--cuda_weights must be f32 or bf16, got '", cuda_weights, "'"));
  }
  HR_RETURN_IF_ERROR(at_least("threads_per_worker", absl::GetFlag(FLAGS_threads_per_worker), 0));
  HR_RETURN_IF_ERROR(at_least("kv_cache_mb", absl::GetFlag(FLAGS_kv_cache_mb), 0));
  if (const double f = absl::GetFlag(FLAGS_gpu_memory_fraction); !(f > 0.0 && f <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("--gpu_memory_fraction must be in (0, 1], got ", f));
  }
  HR_RETURN_IF_ERROR(at_least("max_queue", absl::GetFlag(FLAGS_max_queue), 1));
  HR_RETURN_IF_ERROR(at_least("max_input_tokens", absl::GetFlag(FLAGS_max_input_tokens), 1));
  HR_RETURN_IF_ERROR(at_least("max_new_tokens", absl::GetFlag(FLAGS_max_new_tokens), 1));
  HR_RETURN_IF_ERROR(at_least("default_max_tokens", absl::GetFlag(FLAGS_default_max_tokens), 1));
  HR_RETURN_IF_ERROR(at_least("step_tokens", absl::GetFlag(FLAGS_step_tokens), 1));
  HR_RETURN_IF_ERROR(at_least("prefill_step_tokens", absl::GetFlag(FLAGS_prefill_step_tokens), 0));
  HR_RETURN_IF_ERROR(at_least("max_running", absl::GetFlag(FLAGS_max_running), 1));
  HR_RETURN_IF_ERROR(at_least("drain_timeout_s", absl::GetFlag(FLAGS_drain_timeout_s), 0));
  if (absl::GetFlag(FLAGS_default_max_tokens) > absl::GetFlag(FLAGS_max_new_tokens)) {
    return absl::InvalidArgumentError("--default_max_tokens must be at most --max_new_tokens");
  }
  return absl::OkStatus();
}

// "HOST" of "HOST:PORT" (IPv6 hosts keep their brackets).
std::string HostOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

std::string ModelName(const std::string& path) {
  const std::filesystem::path p = std::filesystem::path(path).lexically_normal();
  const std::filesystem::path base = p.has_filename() ? p : p.parent_path();
  return std::filesystem::is_directory(base) ? base.filename().string() : base.stem().string();
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "headroom-server: error: %s\n", std::string(status.message()).c_str());
  return 1;
}

int Serve(const sigset_t& stop_signals) {
  if (absl::Status flags = CheckFlags(); !flags.ok()) return Fail(flags);
  const std::string model_path = absl::GetFlag(FLAGS_model);
  // LLaMA weights go to the backend --backend chooses (SeqPE: the CPU).
  hr::BackendFacts facts;
  facts.cuda_compiled = hr::CudaBackendCompiled();
  facts.cuda_devices = hr::VisibleCudaDevices();
  facts.llama = false;
  auto serve_llama = [&](hr::LlamaWeights weights) -> absl::StatusOr<std::unique_ptr<hr::ServedModel>> {
    facts.llama = true;
    facts.cuda_supports = hr::CudaSupports(weights.config);
    HR_ASSIGN_OR_RETURN(const hr::Backend backend, hr::ChooseBackend(absl::GetFlag(FLAGS_backend), facts));
    if (backend == hr::Backend::kCpu) return hr::ServeLlama(std::move(weights));
    HR_ASSIGN_OR_RETURN(const hr::LongContextParams defaults, LongContextFromFlags(weights.config));
    hr::CudaServeOptions cuda;
    cuda.chunk_size = defaults.chunk_size;
    cuda.bf16_weights = absl::GetFlag(FLAGS_cuda_weights) == "bf16";
    return hr::ServeLlamaCuda(std::move(weights), cuda);
  };
  absl::StatusOr<hr::LoadedServedModel> loaded = hr::LoadServedModel(model_path, serve_llama);
  if (!loaded.ok()) return Fail(loaded.status());
  // A SeqPE model never reaches serve_llama: the flag's rules apply here.
  if (!facts.llama) {
    if (absl::StatusOr<hr::Backend> b = hr::ChooseBackend(absl::GetFlag(FLAGS_backend), facts); !b.ok()) {
      return Fail(b.status());
    }
  }
  const hr::Backend backend = loaded->model->backend() == "cuda" ? hr::Backend::kCuda : hr::Backend::kCpu;
  if (loaded->tokenizer == nullptr) {
    return Fail(absl::FailedPreconditionError(absl::StrCat(model_path, " ships no tokenizer")));
  }
  const hr::ServedModel& model = *loaded->model;
  const hr::ModelConfig& config = model.config();
  absl::StatusOr<hr::LongContextParams> long_context = LongContextFromFlags(config);
  if (!long_context.ok()) return Fail(long_context.status());
  // The defaults must run the longest request the limits allow.
  if (absl::Status s = model.CheckLongContext(
          *long_context, absl::GetFlag(FLAGS_max_input_tokens) + absl::GetFlag(FLAGS_max_new_tokens));
      !s.ok()) {
    return Fail(s);
  }
  const std::string kv_dtype_name = KvDTypeName(backend);
  absl::StatusOr<hr::KvDType> kv_dtype = ParseKvDType(kv_dtype_name);
  if (!kv_dtype.ok()) return Fail(kv_dtype.status());

  absl::StatusOr<int> workers_wanted =
      hr::ChooseWorkers(backend, absl::GetFlag(FLAGS_workers), facts.cuda_devices);
  if (!workers_wanted.ok()) return Fail(workers_wanted.status());
  const int32_t n_workers = *workers_wanted;
  // Every engine first (a device may refuse its weights or KV cache).
  hr::KvCacheOptions kv;
  kv.dtype = *kv_dtype;
  kv.budget_bytes = absl::GetFlag(FLAGS_kv_cache_mb) << 20;
  kv.memory_fraction = absl::GetFlag(FLAGS_gpu_memory_fraction);
  // A worker's step: at most the larger step budget, or one token per
  // decoding sequence and a chunk of prefill beyond it (worker.h).
  kv.max_step_tokens = std::max<int64_t>({absl::GetFlag(FLAGS_step_tokens), absl::GetFlag(FLAGS_prefill_step_tokens),
                                          int64_t{absl::GetFlag(FLAGS_max_running)} + long_context->chunk_size});
  kv.max_context_tokens = absl::GetFlag(FLAGS_max_input_tokens) + absl::GetFlag(FLAGS_max_new_tokens);
  kv.max_sequences = absl::GetFlag(FLAGS_max_running);
  std::vector<std::unique_ptr<hr::WorkerEngine>> engines;
  for (int i = 0; i < n_workers; ++i) {
    absl::StatusOr<std::unique_ptr<hr::WorkerEngine>> engine = model.NewWorkerEngine(i, kv);
    if (!engine.ok()) return Fail(engine.status());
    std::fprintf(stderr, "headroom-server: worker %d on %s, KV cache %lld MiB\n", i,
                 (*engine)->device().c_str(), static_cast<long long>((*engine)->kv().budget_bytes() >> 20));
    engines.push_back(std::move(*engine));
  }
  // The largest budget: what bounds a request (budgets sized from GPUs may differ).
  int64_t kv_bytes_per_worker = 0;
  for (const auto& e : engines) kv_bytes_per_worker = std::max(kv_bytes_per_worker, e->kv().budget_bytes());
  hr::ServerMetrics metrics(n_workers);
  std::string metrics_endpoint;  // empty: disabled
  if (!absl::GetFlag(FLAGS_metrics_address).empty()) {
    absl::StatusOr<int> port = metrics.StartExposer(absl::GetFlag(FLAGS_metrics_address));
    if (!port.ok()) return Fail(port.status());
    metrics_endpoint = absl::StrCat(HostOf(absl::GetFlag(FLAGS_metrics_address)), ":", *port);
  }

  hr::WorkerOptions worker_options;
  worker_options.threads = absl::GetFlag(FLAGS_threads_per_worker);
  if (worker_options.threads == 0) {
    worker_options.threads =
        std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / n_workers);
  }
  worker_options.kv_dtype = *kv_dtype;
  worker_options.step_tokens = absl::GetFlag(FLAGS_step_tokens);
  worker_options.prefill_step_tokens = absl::GetFlag(FLAGS_prefill_step_tokens);
  worker_options.max_running = absl::GetFlag(FLAGS_max_running);
  worker_options.prefix_cache = absl::GetFlag(FLAGS_prefix_cache);
  hr::api::ServingHealth serving_health;
  worker_options.on_device_lost = [&serving_health](int /*worker*/, const absl::Status& why) {
    std::fprintf(stderr, "headroom-server: %s; health is NOT_SERVING: restart the server\n",
                 std::string(why.message()).c_str());
    serving_health.WorkerLost();
  };
  // Starts the Generate streams' gRPC writes, so that workers only queue
  // their tokens (GenerateReactor). Declared before the workers and the gRPC
  // server: destroyed after both, once their last sink calls have run.
  hr::TaskThread stream_writer;
  std::vector<std::unique_ptr<hr::Worker>> workers;
  std::vector<hr::Worker*> worker_ptrs;
  for (int i = 0; i < n_workers; ++i) {
    hr::WorkerOptions options = worker_options;
    if (i == 0) options.fault_drill_step = absl::GetFlag(FLAGS_device_fault_drill_step);
    workers.push_back(std::make_unique<hr::Worker>(i, model, std::move(engines[i]),
                                                   *loaded->tokenizer, options, &metrics));
    worker_ptrs.push_back(workers.back().get());
    workers.back()->Start();
  }
  hr::SchedulerOptions scheduler_options;
  scheduler_options.max_queue = absl::GetFlag(FLAGS_max_queue);
  hr::Scheduler scheduler(worker_ptrs, scheduler_options, &metrics);

  hr::api::RequestDefaults defaults;
  defaults.tokenizer = loaded->tokenizer.get();
  defaults.model = &model;
  defaults.long_context = *long_context;
  defaults.limits.max_input_tokens = absl::GetFlag(FLAGS_max_input_tokens);
  defaults.limits.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  defaults.limits.default_max_tokens = absl::GetFlag(FLAGS_default_max_tokens);
  hr::api::ServiceInfo info;
  info.model_name = ModelName(model_path);
  info.server_version = kServerVersion;
  info.backend = hr::BackendName(backend);
  info.workers = n_workers;
  info.kv_dtype = kv_dtype_name;
  info.max_queue = scheduler_options.max_queue;
  info.kv_cache_bytes_per_worker = kv_bytes_per_worker;
  hr::api::HeadroomService service(config, defaults, info, &scheduler, &metrics, &stream_writer);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int grpc_port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_grpc_address), grpc::InsecureServerCredentials(),
                           &grpc_port);
  builder.RegisterService(&service);
  // Room for the longest accepted prompt as text (4 MiB at least).
  builder.SetMaxReceiveMessageSize(static_cast<int>(
      std::min<int64_t>(INT32_MAX, std::max<int64_t>(4 << 20, 16 * defaults.limits.max_input_tokens))));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || grpc_port == 0) {
    for (auto& w : workers) w->Stop();
    return Fail(absl::UnavailableError(
        absl::StrCat("cannot listen on --grpc_address ", absl::GetFlag(FLAGS_grpc_address))));
  }
  serving_health.Attach(server->GetHealthCheckService());

  std::fprintf(stderr,
               "headroom-server: %s (%s, %lld layers, trained context %lld), %d worker(s) x %d "
               "threads, attention %s chunk %d window %d\n",
               model_path.c_str(), config.architecture.c_str(),
               static_cast<long long>(config.n_layers),
               static_cast<long long>(config.trained_context), n_workers, worker_options.threads,
               std::string(hr::PolicyName(long_context->policy)).c_str(), long_context->chunk_size,
               long_context->atten_length);
  std::printf("headroom-server: serving grpc=%s:%d metrics=%s\n",
              HostOf(absl::GetFlag(FLAGS_grpc_address)).c_str(), grpc_port,
              metrics_endpoint.c_str());
  std::fflush(stdout);

  // Every thread blocks the stop signals (main() did it before any thread
  // existed); this one waits for them here, outside any signal handler.
  int signal = 0;
  while (sigwait(&stop_signals, &signal) != 0) {
  }
  std::fprintf(stderr, "headroom-server: signal %d, draining (up to %d s)\n", signal,
               absl::GetFlag(FLAGS_drain_timeout_s));
  service.BeginDrain();
  serving_health.BeginDrain();
  const int stopped = scheduler.Drain(absl::Seconds(absl::GetFlag(FLAGS_drain_timeout_s)));
  server->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
  server->Wait();
  for (auto& w : workers) w->Stop();
  std::fprintf(stderr, "headroom-server: stopped (%d request(s) ended by the drain timeout)\n",
               stopped);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Block the stop signals before any thread starts, so every thread
  // (gRPC's, the workers', OpenMP's) inherits the mask and Serve() receives
  // them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  absl::SetProgramUsageMessage(
      "Serves a LLaMA-family model over gRPC (headroom.v1), with health, reflection and "
      "Prometheus metrics.\nUsage: headroom-server --model FILE [--grpc_address HOST:PORT] ...");
  absl::ParseCommandLine(argc, argv);
  return Serve(stop_signals);
}
