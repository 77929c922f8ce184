// subprocess.h and server_process.h against fake_process_main.cc, one mode
// per way a server or command can behave.
#include "tests/util/server_process.h"

#include <pthread.h>
#include <signal.h>

#include <string>

#include "gtest/gtest.h"
#include "tests/util/subprocess.h"

namespace hr::testing {
namespace {

const std::string kFake = HR_FAKE_PROCESS;

absl::StatusOr<std::unique_ptr<ServerProcess>> StartFake(const std::string& mode, std::string arg = "",
                                                         absl::Duration ready = absl::Seconds(30),
                                                         absl::Duration stop = absl::Seconds(30)) {
  ServerProcess::Options o;
  o.argv = {kFake, mode};
  if (!arg.empty()) o.argv.push_back(arg);
  o.ready_timeout = ready;
  o.stop_timeout = stop;
  return ServerProcess::Start(std::move(o));
}

TEST(RunProcessTest, FeedsStdinAndSeparatesStdoutFromStderr) {
  auto r = RunProcess({kFake, "echo"}, "hello\nworld");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "hello\nworld");
  EXPECT_EQ(r->err, "to stderr");
}

TEST(RunProcessTest, MoreInputThanAPipeHoldsDoesNotDeadlock) {
  const std::string big(4 << 20, 'x');  // the child writes back while we still write
  auto r = RunProcess({kFake, "echo"}, big);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->out.size(), big.size());
  EXPECT_EQ(r->out, big);
}

TEST(RunProcessTest, LooksUpNamesInPathAndReportsMissingBinaries) {
  auto r = RunProcess({"sh", "-c", "echo $0", "named"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->out, "named\n");
  EXPECT_EQ(r->exit_code, 0);
  auto missing = RunProcess({"/nonexistent/binary"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  EXPECT_NE(missing.status().message().find("/nonexistent/binary"), std::string::npos);
}

TEST(RunProcessTest, KillsAChildThatOverrunsItsDeadline) {
  auto r = RunProcess({kFake, "silent"}, "", absl::Milliseconds(200));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
}

TEST(ServerProcessTest, ParsesTheServingLineAndStopsWithSigterm) {
  auto server = StartFake("serve");
  ASSERT_TRUE(server.ok()) << server.status();
  ServerProcess& s = **server;
  EXPECT_EQ(s.grpc_address(), "127.0.0.1:43121");
  EXPECT_EQ(s.grpc_port(), 43121);
  EXPECT_EQ(s.metrics_address(), "127.0.0.1:43122");
  EXPECT_EQ(s.metrics_port(), 43122);
  EXPECT_GT(s.pid(), 0);
  auto code = s.Stop();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  // Stop returns once the output is drained: what came after the line too.
  EXPECT_NE(s.stdout_text().find("log line after ready\ndraining\n"), std::string::npos)
      << s.stdout_text();
  EXPECT_EQ(*s.Stop(), 0);  // already stopped: same result, no signal
}

TEST(ServerProcessTest, ReportsTheExitCodeAfterSigterm) {
  auto server = StartFake("serve", "7");
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->Signal(SIGTERM).ok());
  auto code = (*server)->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 7);
}

TEST(ServerProcessTest, ExitBeforeServingIsAnErrorWithTheOutput) {
  auto server = StartFake("exit", "3");
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition) << server.status();
  EXPECT_NE(server.status().message().find("exit code 3"), std::string::npos) << server.status();
  EXPECT_NE(server.status().message().find("failing"), std::string::npos) << server.status();
}

TEST(ServerProcessTest, NoServingLineInTimeKillsTheServer) {
  auto server = StartFake("silent", "", absl::Milliseconds(200));
  EXPECT_EQ(server.status().code(), absl::StatusCode::kDeadlineExceeded) << server.status();
}

TEST(ServerProcessTest, MalformedServingLineIsInternal) {
  auto server = StartFake("malformed");
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInternal) << server.status();
  EXPECT_NE(server.status().message().find("malformed serving line"), std::string::npos);
}

TEST(ServerProcessTest, MissingBinaryIsNotFound) {
  ServerProcess::Options o;
  o.argv = {"/nonexistent/headroom-server"};
  EXPECT_EQ(ServerProcess::Start(o).status().code(), absl::StatusCode::kNotFound);
}

TEST(ServerProcessTest, EscalatesToSigkillWhenSigtermIsIgnored) {
  auto server = StartFake("ignore_term", "", absl::Seconds(30), absl::Milliseconds(200));
  ASSERT_TRUE(server.ok()) << server.status();
  auto code = (*server)->Stop();
  EXPECT_EQ(code.status().code(), absl::StatusCode::kDeadlineExceeded) << code.status();
  // Afterwards it reports how the process ended.
  EXPECT_NE((*server)->Stop().status().message().find("killed by signal 9"), std::string::npos);
}

TEST(ServerProcessTest, ChildStartsWithCleanSignalStateWhateverTheParentDid) {
  // Block and ignore SIGTERM here (as threads of gRPC or a test might); the
  // child must still start with the default action, and so die of SIGTERM.
  sigset_t term, old_mask;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &term, &old_mask), 0);
  struct sigaction ignore = {}, old_action;
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGTERM, &ignore, &old_action), 0);
  auto server = StartFake("default_term");
  sigaction(SIGTERM, &old_action, nullptr);
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ASSERT_TRUE(server.ok()) << server.status();
  auto code = (*server)->Stop();
  EXPECT_EQ(code.status().code(), absl::StatusCode::kInternal) << code.status();
  EXPECT_NE(code.status().message().find("killed by signal 15 (SIGTERM)"), std::string::npos)
      << code.status();
}

TEST(ServerProcessTest, DestructorStopsARunningServer) {
  pid_t pid;
  {
    auto server = StartFake("serve");
    ASSERT_TRUE(server.ok()) << server.status();
    pid = (*server)->pid();
  }
  // Reaped by the destructor: the pid is gone (kill reports ESRCH).
  EXPECT_EQ(::kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

}  // namespace
}  // namespace hr::testing
