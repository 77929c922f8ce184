// A server binary run by a test: started with its arguments, ready once it
// prints its serving line, stopped with SIGTERM.
//
// The serving-line contract (headroom-server; fakes follow it too): once the
// server accepts RPCs it prints one stdout line
//     headroom-server: serving grpc=HOST:PORT metrics=HOST:PORT
// (ports resolved, so "--grpc_address 127.0.0.1:0" works), and on SIGTERM it
// drains and exits 0.
//
//   auto server = ServerProcess::Start({.argv = {binary, "--model", path,
//       "--grpc_address", "127.0.0.1:0", "--metrics_address", "127.0.0.1:0"}});
//   ASSERT_TRUE(server.ok()) << server.status();
//   HeadroomClient client((*server)->grpc_address());
//   ...
//   auto code = (*server)->Stop();  // SIGTERM; exit code, or why not
//   EXPECT_TRUE(code.ok() && *code == 0) << code.status();
//
// No sleeps: Start blocks on the stdout pipe until the line or a deadline,
// Stop on a pidfd until exit or a deadline. The child is set up as Spawn
// describes (subprocess.h): clean signal state, stdin /dev/null, killed if
// the starting thread dies. Its stderr goes to the test's stderr (so the
// server's log shows in the test output); its stdout is read by a
// background thread for the process's whole life, so the server never blocks
// on a full pipe, and is available as stdout_text().
//
// Thread-safety: stdout_text() and the address accessors may be called from
// any thread; Signal/Wait/Stop and destruction from one thread at a time.
#ifndef HEADROOM_TESTS_UTIL_SERVER_PROCESS_H_
#define HEADROOM_TESTS_UTIL_SERVER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tests/util/subprocess.h"

namespace hr::testing {

class ServerProcess {
 public:
  struct Options {
    std::vector<std::string> argv;  // argv[0]: the binary
    // Start() gives up (and kills the child) after this long without the line.
    absl::Duration ready_timeout = absl::Seconds(60);
    // Stop() waits this long after SIGTERM before SIGKILL.
    absl::Duration stop_timeout = absl::Seconds(30);
    // The line's prefix; the rest holds "grpc=HOST:PORT metrics=HOST:PORT".
    std::string ready_prefix = "headroom-server: serving ";
  };

  // Starts the server and waits for its serving line. Errors: the Spawn
  // error when it cannot be executed; FAILED_PRECONDITION when it exits
  // before the line (exit status and stdout in the message);
  // DEADLINE_EXCEEDED when the line does not come within ready_timeout (the
  // child is killed); INTERNAL for a serving line without a valid grpc port.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(Options options);

  // Stops the server if it still runs (as Stop(); a failure is printed).
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // From the serving line, e.g. "127.0.0.1:43121"; port 0 when absent.
  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& metrics_address() const { return metrics_address_; }
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  pid_t pid() const { return child_.pid(); }

  // Everything the server wrote to stdout so far.
  std::string stdout_text() const ABSL_LOCKS_EXCLUDED(mu_);

  // Sends a signal (e.g. SIGTERM to test draining while requests run).
  absl::Status Signal(int signal);
  // Waits at most `timeout` for the server to exit: its exit code; INTERNAL
  // if a signal killed it; DEADLINE_EXCEEDED if it still runs (left running).
  absl::StatusOr<int> Wait(absl::Duration timeout);
  // SIGTERM, then Wait(stop_timeout); if still running, SIGKILL and
  // DEADLINE_EXCEEDED. Once the server has exited, sends nothing and returns
  // how it ended (exit code, or INTERNAL "killed by signal N").
  absl::StatusOr<int> Stop();

 private:
  ServerProcess(Options options, Child child, int wake_fd);
  void ReadStdout();  // the reader thread's body
  // Parses a complete stdout line; sets ready_ on the serving line.
  void OnLine(const std::string& line) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  Child child_;
  int wake_fd_;  // eventfd that stops the reader thread
  std::thread reader_;
  std::string grpc_address_, metrics_address_;  // written before Start returns
  int grpc_port_ = 0, metrics_port_ = 0;

  mutable absl::Mutex mu_;
  std::string stdout_ ABSL_GUARDED_BY(mu_);
  size_t scanned_ ABSL_GUARDED_BY(mu_) = 0;  // stdout_ bytes split into lines
  bool eof_ ABSL_GUARDED_BY(mu_) = false;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  std::string serving_line_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hr::testing

#endif  // HEADROOM_TESTS_UTIL_SERVER_PROCESS_H_
