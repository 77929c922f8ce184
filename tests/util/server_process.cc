#include "tests/util/server_process.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace {

// An idle client channel in the test process answers the server's shutdown
// GOAWAY ping only on gRPC's backup poll (every 5 s by default), which would
// hold every Stop() for the server's whole shutdown grace. Read by
// grpc_init, so set before the first channel exists (static initialisation
// of every test binary that starts a server).
const bool kFastClientPolling = [] {
  return setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "50", /*overwrite=*/0) == 0;
}();

}  // namespace

namespace hr::testing {
namespace {

// "HOST:PORT" -> PORT (the text after the last ':', so "[::1]:80" works).
bool ParsePort(const std::string& address, int* port) {
  const size_t colon = address.rfind(':');
  return colon != std::string::npos && absl::SimpleAtoi(address.substr(colon + 1), port) &&
         *port >= 0 && *port <= 65535;
}

// How long Stop() waits, after the exit, for the reader to drain the pipe.
constexpr absl::Duration kDrainTimeout = absl::Seconds(5);

}  // namespace

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(Options options) {
  auto child = Spawn(options.argv, {.pipe_stdout = true});
  if (!child.ok()) return child.status();
  const int wake_fd = ::eventfd(0, EFD_CLOEXEC);
  if (wake_fd < 0) {
    (void)child->Kill(SIGKILL);
    (void)child->Wait(absl::InfiniteDuration());
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  std::unique_ptr<ServerProcess> server(new ServerProcess(std::move(options), std::move(*child), wake_fd));
  server->reader_ = std::thread(&ServerProcess::ReadStdout, server.get());
  const Options& opt = server->options_;
  const std::string name = opt.argv[0];

  const absl::Time deadline = absl::Now() + opt.ready_timeout;
  bool ready, eof;
  std::string line, out;
  {
    absl::MutexLock lock(&server->mu_);
    server->mu_.AwaitWithDeadline(
        absl::Condition(
            +[](ServerProcess* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) { return s->ready_ || s->eof_; },
            server.get()),
        deadline);
    ready = server->ready_;
    eof = server->eof_;
    line = server->serving_line_;
    out = server->stdout_;
  }
  if (!ready && eof) {  // stdout closed: the server is exiting (or exited)
    const absl::Time now = absl::Now();
    auto code = server->Wait(now < deadline ? deadline - now : absl::ZeroDuration());
    const std::string how = code.ok() ? absl::StrCat("exit code ", *code) : std::string(code.status().message());
    return absl::FailedPreconditionError(
        absl::StrCat(name, " ended before serving (", how, "); stdout: ", out));
  }
  if (!ready) {
    (void)server->child_.Kill(SIGKILL);
    (void)server->child_.Wait(absl::InfiniteDuration());
    return absl::DeadlineExceededError(absl::StrCat(name, " printed no serving line within ",
                                                    absl::FormatDuration(opt.ready_timeout),
                                                    "; stdout: ", out));
  }
  for (absl::string_view field : absl::StrSplit(absl::StripPrefix(line, opt.ready_prefix), ' ', absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&field, "grpc=")) server->grpc_address_ = std::string(field);
    if (absl::ConsumePrefix(&field, "metrics=")) server->metrics_address_ = std::string(field);
  }
  const bool ports_ok = ParsePort(server->grpc_address_, &server->grpc_port_) && server->grpc_port_ > 0 &&
                        (server->metrics_address_.empty() ||
                         ParsePort(server->metrics_address_, &server->metrics_port_));
  if (!ports_ok) {
    (void)server->Stop();
    return absl::InternalError(absl::StrCat(name, ": malformed serving line '", line, "'"));
  }
  return server;
}

ServerProcess::ServerProcess(Options options, Child child, int wake_fd)
    : options_(std::move(options)), child_(std::move(child)), wake_fd_(wake_fd) {}

ServerProcess::~ServerProcess() {
  if (!child_.exited()) {
    auto code = Stop();
    if (!code.ok() || *code != 0) {
      const std::string how = code.ok() ? absl::StrCat("exit code ", *code) : code.status().ToString();
      std::fprintf(stderr, "ServerProcess: %s (pid %d) stopped with %s\n", options_.argv[0].c_str(),
                   static_cast<int>(child_.pid()), how.c_str());
    }
  }
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
  if (reader_.joinable()) reader_.join();
  ::close(wake_fd_);
}

std::string ServerProcess::stdout_text() const {
  absl::MutexLock lock(&mu_);
  return stdout_;
}

absl::Status ServerProcess::Signal(int signal) { return child_.Kill(signal); }

absl::StatusOr<int> ServerProcess::Wait(absl::Duration timeout) {
  if (absl::Status s = child_.Wait(timeout); !s.ok()) return s;
  // The exit closed the pipe: let the reader take in the last output.
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&eof_), kDrainTimeout);
  return ExitCode(child_.wait_status());
}

absl::StatusOr<int> ServerProcess::Stop() {
  if (child_.exited()) return ExitCode(child_.wait_status());
  (void)child_.Kill(SIGTERM);
  auto code = Wait(options_.stop_timeout);
  if (code.ok() || !absl::IsDeadlineExceeded(code.status())) return code;
  (void)child_.Kill(SIGKILL);
  (void)child_.Wait(absl::InfiniteDuration());
  return absl::DeadlineExceededError(absl::StrCat(options_.argv[0], " did not exit within ",
                                                  absl::FormatDuration(options_.stop_timeout),
                                                  " of SIGTERM; killed"));
}

void ServerProcess::ReadStdout() {
  char buf[4096];
  while (true) {
    pollfd fds[2] = {{child_.stdout_fd(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    const int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || fds[1].revents != 0) break;
    const ssize_t r = ::read(child_.stdout_fd(), buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    absl::MutexLock lock(&mu_);
    stdout_.append(buf, static_cast<size_t>(r));
    for (size_t nl; (nl = stdout_.find('\n', scanned_)) != std::string::npos; scanned_ = nl + 1) {
      OnLine(stdout_.substr(scanned_, nl - scanned_));
    }
  }
  absl::MutexLock lock(&mu_);
  eof_ = true;
}

void ServerProcess::OnLine(const std::string& line) {
  if (!ready_ && absl::StartsWith(line, options_.ready_prefix)) {
    serving_line_ = line;
    ready_ = true;
  }
}

}  // namespace hr::testing
