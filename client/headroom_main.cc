// headroom: the command-line client of a Headroom server (flags, subcommand
// dispatch and printing; the work is in headroom_client, bench_runner and
// bench_stats). Every error prints "error: CODE: message" on stderr and
// exits 1 (Docker's HEALTHCHECK reads 1 as unhealthy).
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "client/bench_runner.h"
#include "client/bench_stats.h"
#include "client/cli_args.h"
#include "client/generate_display.h"
#include "client/headroom_client.h"
#include "client/request_builder.h"
#include "google/protobuf/util/json_util.h"

// --- Connection (every subcommand) ---
ABSL_FLAG(std::string, server, "127.0.0.1:50051", "gRPC address of the Headroom server (host:port)");
ABSL_FLAG(double, timeout_s, 0.0,
          "deadline of each RPC in seconds; 0 = the subcommand's default: health 3, tokenize, "
          "detokenize, info and cancel 30, generate and bench none (per request)");
ABSL_FLAG(bool, wait_for_ready, false,
          "wait (up to the deadline) for the server to come up instead of failing at once with "
          "UNAVAILABLE");
ABSL_FLAG(bool, json, false,
          "print protobuf JSON instead of text (generate: one line per stream message)");

// --- Input (generate, tokenize) ---
ABSL_FLAG(std::string, text, "", "input text (generate, tokenize); else --file, else stdin");
ABSL_FLAG(std::string, file, "", "read the input text from this file (generate, tokenize)");
ABSL_FLAG(bool, bos, true, "prepend the model's BOS token to text input (generate, tokenize)");

// --- Generation (generate; bench uses them as the request template) ---
ABSL_FLAG(int32_t, max_tokens, 0, "generated tokens at most; 0 = the server's default");
ABSL_FLAG(float, temperature, 0.0f, "sampling temperature; 0 = greedy");
ABSL_FLAG(float, top_p, 1.0f, "nucleus sampling mass in (0, 1]; 1 = off");
ABSL_FLAG(int32_t, top_k, 0, "keep the k most likely tokens; 0 = off");
ABSL_FLAG(float, min_p, 0.0f, "drop tokens below min_p x the top probability; 0 = off");
ABSL_FLAG(float, repetition_penalty, 1.0f, "penalty on tokens already seen; 1 = off");
ABSL_FLAG(uint64_t, seed, 0,
          "sampling seed (same seed, same tokens); bench: also seeds the prompts and arrivals");
ABSL_FLAG(std::vector<std::string>, stop, {},
          "stop string; repeatable, and each value may be a comma-separated list (so a stop "
          "string cannot contain a comma)");
ABSL_FLAG(bool, ignore_eos, false, "keep generating past the end-of-sequence token");
ABSL_FLAG(std::string, policy, "",
          "attention policy: full | window | longheads; empty = the server's default");
ABSL_FLAG(int32_t, chunk_size, 0, "tokens per chunk (KV block); 0 = the server's default");
ABSL_FLAG(int32_t, atten_length, 0,
          "attention window per head in tokens, a multiple of chunk_size; 0 = the server's default");
ABSL_FLAG(std::string, summary, "",
          "LongHeads chunk summary: longheads | bound | mean; empty = the server's default");
ABSL_FLAG(std::string, gqa_selection, "",
          "chunk selection per query_head or kv_head; empty = the server's default");
ABSL_FLAG(std::string, prefill_selection, "",
          "prefill selection per token or chunk; empty = the server's default");
ABSL_FLAG(std::string, priority, "", "low | normal | high; empty = normal");
ABSL_FLAG(std::string, request_id, "",
          "generate: the request's id (for cancel; empty = the server assigns one); cancel: the "
          "request to cancel");
ABSL_FLAG(int32_t, logprobs, 0,
          "generate: return each token's log-probability and its N best alternatives (shown with "
          "--json)");
ABSL_FLAG(bool, progress, false,
          "generate: draw the prefill progress bar on stderr even when stderr is not a terminal");

// --- tokenize / detokenize ---
ABSL_FLAG(bool, pieces, false, "tokenize: print one 'id<TAB>piece' line per token");
ABSL_FLAG(std::vector<std::string>, ids, {}, "detokenize: comma-separated token ids");

// --- bench ---
ABSL_FLAG(int64_t, num_prompts, 100, "bench: requests to send");
ABSL_FLAG(int32_t, concurrency, 0,
          "bench: requests in flight at most; 0 = no limit (1024 at most)");
ABSL_FLAG(double, request_rate, std::numeric_limits<double>::infinity(),
          "bench: Poisson arrival rate in requests/s; inf = all at once");
ABSL_FLAG(int32_t, input_tokens, 128,
          "bench: tokens per synthetic prompt (random ids from the model's vocabulary)");
ABSL_FLAG(int32_t, output_tokens, 128,
          "bench: tokens generated per request (synthetic prompts ignore EOS to reach it)");
ABSL_FLAG(std::string, prompt_file, "",
          "bench: text prompts, one per non-empty line, cycled; instead of synthetic prompts");
ABSL_FLAG(std::string, json_out, "", "bench: also write the results as JSON to this file");

namespace {

namespace v1 = ::headroom::v1;
using hr::client::CallOptions;
using hr::client::HeadroomClient;

constexpr char kUsage[] = R"(Command-line client of a Headroom server.

usage: headroom SUBCOMMAND [flags]

  generate    stream a completion of --text / --file / stdin to stdout
              (prefill progress and a summary line on stderr)
  tokenize    print the token ids of --text / --file / stdin (--pieces: with pieces)
  detokenize  print the text of --ids
  info        describe the served model, its defaults and limits
  health      print the server's health; exit 0 iff SERVING (for HEALTHCHECK)
  cancel      cancel the running request --request_id
  bench       serving benchmark: --num_prompts requests at --request_rate with at
              most --concurrency in flight; TTFT, TPOT, ITL and latency percentiles

Every RPC error prints "error: CODE: message" and exits 1.)";

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "error: %s: %s\n", absl::StatusCodeToString(status.code()).c_str(),
               std::string(status.message()).c_str());
  return 1;
}

CallOptions Options(double default_timeout_s) {
  const double t = absl::GetFlag(FLAGS_timeout_s) > 0 ? absl::GetFlag(FLAGS_timeout_s) : default_timeout_s;
  CallOptions options =
      CallOptions::WithTimeout(t > 0 ? absl::Seconds(t) : absl::InfiniteDuration());
  options.wait_for_ready = absl::GetFlag(FLAGS_wait_for_ready);
  return options;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// --text, else --file, else all of stdin.
absl::StatusOr<std::string> InputText() {
  if (!absl::GetFlag(FLAGS_text).empty()) return absl::GetFlag(FLAGS_text);
  if (!absl::GetFlag(FLAGS_file).empty()) return ReadFile(absl::GetFlag(FLAGS_file));
  std::stringstream ss;
  ss << std::cin.rdbuf();
  return ss.str();
}

std::string ToJson(const google::protobuf::Message& message, bool multiline) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  options.add_whitespace = multiline;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  if (out.empty() || out.back() != '\n') out += "\n";
  return out;
}

absl::StatusOr<v1::GenerateRequest> RequestFromFlags() {
  hr::client::GenerateFlags f;
  f.max_tokens = absl::GetFlag(FLAGS_max_tokens);
  f.temperature = absl::GetFlag(FLAGS_temperature);
  f.top_p = absl::GetFlag(FLAGS_top_p);
  f.top_k = absl::GetFlag(FLAGS_top_k);
  f.min_p = absl::GetFlag(FLAGS_min_p);
  f.repetition_penalty = absl::GetFlag(FLAGS_repetition_penalty);
  f.seed = absl::GetFlag(FLAGS_seed);
  f.stop = absl::GetFlag(FLAGS_stop);
  f.ignore_eos = absl::GetFlag(FLAGS_ignore_eos);
  f.add_bos = absl::GetFlag(FLAGS_bos);
  f.policy = absl::GetFlag(FLAGS_policy);
  f.chunk_size = absl::GetFlag(FLAGS_chunk_size);
  f.atten_length = absl::GetFlag(FLAGS_atten_length);
  f.summary = absl::GetFlag(FLAGS_summary);
  f.gqa_selection = absl::GetFlag(FLAGS_gqa_selection);
  f.prefill_selection = absl::GetFlag(FLAGS_prefill_selection);
  f.priority = absl::GetFlag(FLAGS_priority);
  f.request_id = absl::GetFlag(FLAGS_request_id);
  f.logprobs = absl::GetFlag(FLAGS_logprobs);
  return hr::client::BuildGenerateRequest(f);
}

double SecondsSince(absl::Time start) { return absl::ToDoubleSeconds(absl::Now() - start); }

int Generate(const HeadroomClient& client) {
  auto request = RequestFromFlags();
  if (!request.ok()) return Fail(request.status());
  auto text = InputText();
  if (!text.ok()) return Fail(text.status());
  request->set_text(*text);

  const bool json = absl::GetFlag(FLAGS_json);
  const bool stderr_tty = ::isatty(STDERR_FILENO) != 0;
  const bool stdout_tty = ::isatty(STDOUT_FILENO) != 0;
  const bool show_progress = stderr_tty || absl::GetFlag(FLAGS_progress);
  size_t bar_chars = 0;  // width of the progress line on screen; 0 = none
  auto clear_bar = [&] {
    if (bar_chars == 0) return;
    if (stderr_tty) {
      std::fprintf(stderr, "\r%s\r", std::string(bar_chars, ' ').c_str());
    } else {
      std::fputc('\n', stderr);
    }
    bar_chars = 0;
  };
  char last_char = '\n';
  hr::client::ClientTimings timings;
  const absl::Time start = absl::Now();

  hr::client::GenerateCallbacks callbacks;
  if (json) {
    callbacks.on_response = [](const v1::GenerateResponse& r) {
      std::fputs(ToJson(r, false).c_str(), stdout);
      std::fflush(stdout);
    };
  }
  callbacks.on_progress = [&](const v1::PrefillProgress& p) {
    if (!show_progress) return;
    const std::string line = hr::client::FormatPrefillProgress(p);
    std::fprintf(stderr, "\r%s", line.c_str());
    std::fflush(stderr);
    bar_chars = line.size();
  };
  callbacks.on_delta = [&](const v1::TokenDelta& d) {
    if (timings.first_token_s < 0 && d.ids_size() > 0) timings.first_token_s = SecondsSince(start);
    clear_bar();
    if (json || d.text().empty()) return;
    std::fwrite(d.text().data(), 1, d.text().size(), stdout);
    std::fflush(stdout);
    last_char = d.text().back();
  };
  auto result = client.Generate(*request, callbacks, Options(0));
  timings.end_s = SecondsSince(start);
  clear_bar();
  if (!json && stdout_tty && last_char != '\n') std::fputc('\n', stdout);
  std::fflush(stdout);
  if (!result.ok()) return Fail(result.status());
  std::fprintf(stderr, "%s\n", hr::client::FormatGenerateSummary(result->finished, timings).c_str());
  return 0;
}

int Tokenize(const HeadroomClient& client) {
  auto text = InputText();
  if (!text.ok()) return Fail(text.status());
  v1::TokenizeRequest request;
  request.set_text(*text);
  if (!absl::GetFlag(FLAGS_bos)) request.set_add_bos(false);
  auto response = client.Tokenize(request, Options(30));
  if (!response.ok()) return Fail(response.status());
  if (absl::GetFlag(FLAGS_json)) {
    std::fputs(ToJson(*response, false).c_str(), stdout);
  } else if (absl::GetFlag(FLAGS_pieces)) {
    for (int i = 0; i < response->ids_size(); ++i) {
      const std::string piece = i < response->pieces_size() ? response->pieces(i) : "";
      std::printf("%d\t%s\n", response->ids(i), hr::client::PrintablePiece(piece).c_str());
    }
  } else {
    std::string line;
    for (int i = 0; i < response->ids_size(); ++i) absl::StrAppend(&line, i ? " " : "", response->ids(i));
    std::printf("%s\n", line.c_str());
  }
  return 0;
}

int Detokenize(const HeadroomClient& client) {
  v1::DetokenizeRequest request;
  for (const std::string& s : absl::GetFlag(FLAGS_ids)) {
    int32_t id;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(s), &id)) {
      return Fail(absl::InvalidArgumentError(absl::StrCat("--ids: not a token id: '", s, "'")));
    }
    request.add_ids(id);
  }
  auto response = client.Detokenize(request, Options(30));
  if (!response.ok()) return Fail(response.status());
  if (absl::GetFlag(FLAGS_json)) {
    std::fputs(ToJson(*response, false).c_str(), stdout);
  } else {
    std::printf("%s\n", response->text().c_str());
  }
  return 0;
}

// "ATTENTION_POLICY_LONGHEADS" -> "longheads".
std::string Short(const std::string& enum_name, const std::string& prefix) {
  return absl::AsciiStrToLower(absl::StripPrefix(enum_name, prefix));
}

int Info(const HeadroomClient& client) {
  auto info = client.GetModelInfo(Options(30));
  if (!info.ok()) return Fail(info.status());
  if (absl::GetFlag(FLAGS_json)) {
    std::fputs(ToJson(*info, true).c_str(), stdout);
    return 0;
  }
  const v1::LongContextOptions& lc = info->long_context_defaults();
  const v1::Limits& l = info->limits();
  auto row = [](const char* name, const std::string& value) {
    std::printf("%-14s %s\n", name, value.c_str());
  };
  row("model", info->model_name());
  row("architecture", info->architecture());
  row("api", absl::StrCat(info->api_version(), " (server ", info->server_version(), ")"));
  row("backend", absl::StrCat(info->backend(), ", ", info->workers(), " worker(s)",
                              info->workers_lost() > 0 ? absl::StrCat(" (", info->workers_lost(), " lost)") : "",
                              ", kv ", info->kv_dtype()));
  for (const v1::WorkerInfo& w : info->worker()) {
    row(absl::StrCat("worker ", w.index()).c_str(),
        absl::StrCat(w.device(), ", kv cache ", w.kv_cache_bytes() >> 20, " MiB", w.lost() ? ", LOST" : ""));
  }
  row("context", absl::StrCat("trained ", info->trained_context(), " tokens; input up to ",
                              l.max_input_tokens(), " tokens"));
  row("vocabulary", absl::StrCat(info->vocab_size(), " tokens (bos ", info->bos_id(), ", eos ",
                                 info->eos_id(), ")"));
  row("shape", absl::StrCat(info->n_layers(), " layers, ", info->n_heads(), " heads, ",
                            info->n_kv_heads(), " kv heads, head dim ", info->head_dim()));
  row("long context",
      absl::StrCat(Short(v1::AttentionPolicy_Name(lc.policy()), "ATTENTION_POLICY_"), ", chunk ",
                   lc.chunk_size(), ", atten_length ", lc.atten_length(), ", summary ",
                   Short(v1::SummaryKind_Name(lc.summary()), "SUMMARY_KIND_"), ", gqa ",
                   Short(v1::GqaSelection_Name(lc.gqa_selection()), "GQA_SELECTION_"), ", prefill ",
                   Short(v1::PrefillSelection_Name(lc.prefill_selection()), "PREFILL_SELECTION_")));
  row("limits", absl::StrFormat("new tokens %d (default %d), queue %d, logprobs %d, kv cache %.1f "
                                "MiB/worker",
                                l.max_new_tokens(), l.default_max_tokens(), l.max_queue(),
                                l.max_logprobs(), static_cast<double>(l.kv_cache_bytes_per_worker()) / (1 << 20)));
  return 0;
}

int Health(const HeadroomClient& client) {
  auto status = client.Health(Options(3));
  if (!status.ok()) return Fail(status.status());
  std::printf("%s\n", grpc::health::v1::HealthCheckResponse::ServingStatus_Name(*status).c_str());
  return *status == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

int Cancel(const HeadroomClient& client) {
  const std::string id = absl::GetFlag(FLAGS_request_id);
  if (id.empty()) return Fail(absl::InvalidArgumentError("cancel needs --request_id"));
  if (absl::Status s = client.Cancel(id, Options(30)); !s.ok()) return Fail(s);
  std::printf("cancelled %s\n", id.c_str());
  return 0;
}

int Bench(const HeadroomClient& client) {
  const int64_t n = absl::GetFlag(FLAGS_num_prompts);
  const double rate = absl::GetFlag(FLAGS_request_rate);
  if (n < 1) return Fail(absl::InvalidArgumentError("--num_prompts must be at least 1"));
  if (!(rate > 0)) return Fail(absl::InvalidArgumentError("--request_rate must be positive (or inf)"));
  if (absl::GetFlag(FLAGS_concurrency) < 0) {
    return Fail(absl::InvalidArgumentError("--concurrency must be >= 0"));
  }
  auto base = RequestFromFlags();
  if (!base.ok()) return Fail(base.status());
  base->mutable_stop()->set_max_tokens(absl::GetFlag(FLAGS_output_tokens));
  base->clear_request_id();  // ids must be unique; the server assigns them

  std::vector<v1::GenerateRequest> requests;
  if (!absl::GetFlag(FLAGS_prompt_file).empty()) {
    auto text = ReadFile(absl::GetFlag(FLAGS_prompt_file));
    if (!text.ok()) return Fail(text.status());
    std::vector<std::string> prompts = absl::StrSplit(*text, '\n', absl::SkipWhitespace());
    if (prompts.empty()) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(absl::GetFlag(FLAGS_prompt_file), " has no prompts")));
    }
    requests = hr::client::TextRequests(prompts, n, *base);
  } else {
    CallOptions info_options = Options(30);
    auto info = client.GetModelInfo(info_options);
    if (!info.ok()) return Fail(info.status());
    auto synthetic = hr::client::SyntheticRequests(*info, n, absl::GetFlag(FLAGS_input_tokens),
                                                   absl::GetFlag(FLAGS_seed), *base);
    if (!synthetic.ok()) return Fail(synthetic.status());
    requests = std::move(*synthetic);
  }

  hr::client::BenchOptions options;
  options.concurrency = absl::GetFlag(FLAGS_concurrency);
  options.request_rate = rate;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.timeout = absl::GetFlag(FLAGS_timeout_s) > 0 ? absl::Seconds(absl::GetFlag(FLAGS_timeout_s))
                                                       : absl::InfiniteDuration();
  if (::isatty(STDERR_FILENO)) {
    options.on_request_done = [](int64_t done, int64_t total) {
      std::fprintf(stderr, "\rbench: %lld/%lld requests done", static_cast<long long>(done),
                   static_cast<long long>(total));
      if (done == total) std::fputc('\n', stderr);
      std::fflush(stderr);
    };
  }
  const std::string concurrency =
      options.concurrency > 0 ? absl::StrCat(options.concurrency) : "unlimited";
  const std::string rate_text = std::isinf(rate) ? "inf" : absl::StrFormat("%g", rate);
  const std::string prompts =
      absl::GetFlag(FLAGS_prompt_file).empty()
          ? absl::StrCat(absl::GetFlag(FLAGS_input_tokens), " input / ",
                         absl::GetFlag(FLAGS_output_tokens), " output tokens")
          : absl::StrCat("prompts from ", absl::GetFlag(FLAGS_prompt_file));
  std::fprintf(stderr, "bench: %lld requests, concurrency %s, rate %s/s, %s\n",
               static_cast<long long>(n), concurrency.c_str(), rate_text.c_str(), prompts.c_str());
  const hr::client::BenchRun run = hr::client::RunBench(client, requests, options);
  const hr::client::BenchReport report = hr::client::ComputeReport(run.records, run.duration_s);
  std::fputs(hr::client::FormatBenchReport(report, run).c_str(), stdout);
  if (!absl::GetFlag(FLAGS_json_out).empty()) {
    std::ofstream out(absl::GetFlag(FLAGS_json_out));
    out << hr::client::BenchReportJson(report, run);
    if (!out) return Fail(absl::UnavailableError(absl::StrCat("cannot write ", absl::GetFlag(FLAGS_json_out))));
  }
  if (report.failed > 0) {
    return Fail(absl::UnknownError(absl::StrCat(report.failed, " of ", n, " requests failed")));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  // --stop may repeat: merge its occurrences before Abseil keeps only the last.
  std::vector<std::string> merged = hr::client::MergeRepeatedFlag(
      std::vector<std::string>(argv, argv + argc), "stop");
  std::vector<char*> merged_argv;
  for (std::string& a : merged) merged_argv.push_back(a.data());
  merged_argv.push_back(nullptr);
  const std::vector<char*> positional =
      absl::ParseCommandLine(static_cast<int>(merged.size()), merged_argv.data());

  const std::map<std::string, std::function<int(const HeadroomClient&)>> commands = {
      {"generate", Generate}, {"tokenize", Tokenize}, {"detokenize", Detokenize},
      {"info", Info},         {"health", Health},     {"cancel", Cancel},
      {"bench", Bench}};
  if (positional.size() != 2 || commands.count(positional[1]) == 0) {
    std::fprintf(stderr, "%s\n", kUsage);
    return Fail(absl::InvalidArgumentError(
        positional.size() < 2 ? "no subcommand"
                              : absl::StrCat("unknown subcommand or extra argument '",
                                             positional.back(), "'")));
  }
  const HeadroomClient client(absl::GetFlag(FLAGS_server));
  return commands.at(positional[1])(client);
}
