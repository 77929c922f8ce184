// Child processes for tests: start a binary with pipes, wait for it with a
// deadline, and run a command to completion capturing its output. No sleeps:
// waits block on the pipes and on a pidfd (poll with a deadline).
//
// The child starts clean whatever the test process did: an empty signal mask
// and default dispositions for every signal (so a server's SIGTERM handler
// works even when gRPC or gtest blocked or ignored signals in the parent),
// stdin from /dev/null unless piped, no inherited descriptors other than
// 0, 1, 2 (everything the helpers open is close-on-exec), and it is killed
// (SIGKILL) when the thread that started it exits, so a crashed test leaves
// no server behind. Start children from a thread that outlives them (the
// test's main thread).
//
// Thread-safety: a Child is thread-compatible (one owner); the functions are
// thread-safe.
#ifndef HEADROOM_TESTS_UTIL_SUBPROCESS_H_
#define HEADROOM_TESTS_UTIL_SUBPROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace hr::testing {

struct SpawnOptions {
  bool pipe_stdin = false;   // else /dev/null
  bool pipe_stdout = false;  // else inherited
  bool pipe_stderr = false;  // else inherited
};

// A started child. Owns its descriptors (closed on destruction); does not
// wait for or kill the process on destruction (ServerProcess does).
class Child {
 public:
  Child() = default;
  Child(Child&& other) noexcept;
  Child& operator=(Child&& other) noexcept;
  ~Child();

  pid_t pid() const { return pid_; }
  // The parent's ends of the requested pipes; -1 when not piped. Owned by
  // the Child: use them, don't close them (CloseStdin() sends EOF).
  int stdin_fd() const { return stdin_fd_; }
  int stdout_fd() const { return stdout_fd_; }
  int stderr_fd() const { return stderr_fd_; }
  void CloseStdin();

  bool exited() const { return exited_; }
  // Raw wait status (see waitpid) once exited() is true.
  int wait_status() const { return wait_status_; }

  // Waits for the child to exit, at most `timeout` (InfiniteDuration: no
  // limit). OK once it exited (then exited() and wait_status() are set;
  // calling again returns OK at once); DEADLINE_EXCEEDED if it still runs.
  absl::Status Wait(absl::Duration timeout);
  // Sends `signal` unless the child has been reaped.
  absl::Status Kill(int signal);

 private:
  friend absl::StatusOr<Child> Spawn(const std::vector<std::string>& argv, const SpawnOptions& options);
  void CloseAll();

  pid_t pid_ = -1;
  int pidfd_ = -1;  // -1 where the kernel lacks pidfd_open (Wait then polls waitpid)
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  bool exited_ = false;
  int wait_status_ = 0;
};

// Starts argv[0] (a path, or a name looked up in $PATH) with `argv`.
// NOT_FOUND / PERMISSION_DENIED etc. when it cannot be executed (the exec
// error is reported, not a child that exits 127). REQUIRES: !argv.empty().
absl::StatusOr<Child> Spawn(const std::vector<std::string>& argv, const SpawnOptions& options = {});

// Exit code for a normal exit; INTERNAL "killed by signal N (NAME)" otherwise.
absl::StatusOr<int> ExitCode(int wait_status);

struct ProcessResult {
  int wait_status = 0;     // raw; see exit_code
  int exit_code = -1;      // -1 unless the process exited normally
  std::string out;         // all of stdout
  std::string err;         // all of stderr
};

// Runs argv to completion with `stdin_text` on its stdin, capturing stdout
// and stderr separately. DEADLINE_EXCEEDED (the child killed, its output in
// the message) when it has not finished within `timeout`; spawn errors as
// Spawn. A non-zero exit is a result, not an error.
absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         const std::string& stdin_text = "",
                                         absl::Duration timeout = absl::Seconds(120));

}  // namespace hr::testing

#endif  // HEADROOM_TESTS_UTIL_SUBPROCESS_H_
