#include "tests/util/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace hr::testing {
namespace {

void CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

absl::Status ErrnoStatus(int err, const std::string& what) {
  const std::string message = absl::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

// Milliseconds until `deadline` for poll(): -1 for none, at least 0.
int PollTimeoutMs(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return -1;
  const int64_t ms = absl::ToInt64Milliseconds(absl::Ceil(deadline - absl::Now(), absl::Milliseconds(1)));
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 1 << 30));
}

absl::Time DeadlineAfter(absl::Duration timeout) {
  return timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
}

// argv[0] as an executable path: itself when it has a '/', else the first
// match in $PATH (resolved here because the child may only call exec*).
std::string ResolveProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    const std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return name;  // execv reports ENOENT
}

// Runs in the child between fork and exec: async-signal-safe calls only.
[[noreturn]] void ExecChild(const char* path, char* const* argv, pid_t parent, int in, int out,
                            int err, int report_fd) {
  // Die with the thread that started us, and catch a parent that is already gone.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
  }
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  if (in >= 0 && ::dup2(in, STDIN_FILENO) < 0) ::_exit(127);
  if (out >= 0 && ::dup2(out, STDOUT_FILENO) < 0) ::_exit(127);
  if (err >= 0 && ::dup2(err, STDERR_FILENO) < 0) ::_exit(127);
  ::execv(path, argv);
  const int e = errno;
  (void)!::write(report_fd, &e, sizeof(e));
  ::_exit(127);
}

}  // namespace

Child::Child(Child&& other) noexcept { *this = std::move(other); }

Child& Child::operator=(Child&& other) noexcept {
  if (this != &other) {
    CloseAll();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::exchange(other.pidfd_, -1);
    stdin_fd_ = std::exchange(other.stdin_fd_, -1);
    stdout_fd_ = std::exchange(other.stdout_fd_, -1);
    stderr_fd_ = std::exchange(other.stderr_fd_, -1);
    exited_ = std::exchange(other.exited_, false);
    wait_status_ = std::exchange(other.wait_status_, 0);
  }
  return *this;
}

Child::~Child() { CloseAll(); }

void Child::CloseAll() {
  CloseFd(pidfd_);
  CloseFd(stdin_fd_);
  CloseFd(stdout_fd_);
  CloseFd(stderr_fd_);
}

void Child::CloseStdin() { CloseFd(stdin_fd_); }

absl::Status Child::Wait(absl::Duration timeout) {
  if (exited_) return absl::OkStatus();
  if (pid_ < 0) return absl::FailedPreconditionError("no child process");
  const absl::Time deadline = DeadlineAfter(timeout);
  if (pidfd_ >= 0) {
    // The pidfd becomes readable when the child exits.
    pollfd p{pidfd_, POLLIN, 0};
    int n;
    do {
      n = ::poll(&p, 1, PollTimeoutMs(deadline));
    } while (n < 0 && errno == EINTR);
    if (n < 0) return ErrnoStatus(errno, "poll(pidfd)");
    if (n == 0) return absl::DeadlineExceededError(absl::StrCat("pid ", pid_, " still running"));
  }
  while (true) {
    // With a pidfd this returns at once; without one (kernels before 5.3) it
    // polls, the only fallback there is.
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, pidfd_ >= 0 ? 0 : WNOHANG);
    if (r == pid_) {
      exited_ = true;
      wait_status_ = status;
      return absl::OkStatus();
    }
    if (r < 0 && errno != EINTR) return ErrnoStatus(errno, "waitpid");
    if (r == 0) {
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat("pid ", pid_, " still running"));
      }
      const timespec ms5{0, 5'000'000};
      ::nanosleep(&ms5, nullptr);
    }
  }
}

absl::Status Child::Kill(int signal) {
  if (exited_ || pid_ < 0) return absl::FailedPreconditionError("the process has exited");
  if (::kill(pid_, signal) != 0) return ErrnoStatus(errno, "kill");
  return absl::OkStatus();
}

absl::StatusOr<Child> Spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  const std::string path = ResolveProgram(argv[0]);
  std::vector<std::string> args = argv;  // stable storage for the char* array
  std::vector<char*> cargs;
  for (std::string& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);

  // [0] read end, [1] write end; every descriptor close-on-exec.
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1};
  auto close_all = [&] {
    for (int* p : {in, out, err, report}) {
      CloseFd(p[0]);
      CloseFd(p[1]);
    }
  };
  bool ok = ::pipe2(report, O_CLOEXEC) == 0;
  if (ok && options.pipe_stdin) ok = ::pipe2(in, O_CLOEXEC) == 0;
  if (ok && !options.pipe_stdin) ok = (in[0] = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;
  if (ok && options.pipe_stdout) ok = ::pipe2(out, O_CLOEXEC) == 0;
  if (ok && options.pipe_stderr) ok = ::pipe2(err, O_CLOEXEC) == 0;
  if (!ok) {
    const int e = errno;
    close_all();
    return ErrnoStatus(e, "pipe");
  }

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    close_all();
    return ErrnoStatus(e, "fork");
  }
  if (pid == 0) ExecChild(path.c_str(), cargs.data(), parent, in[0], out[1], err[1], report[1]);

  Child child;
  child.pid_ = pid;
  child.pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));  // -1: fallback
  if (child.pidfd_ >= 0) ::fcntl(child.pidfd_, F_SETFD, FD_CLOEXEC);
  CloseFd(in[0]);
  CloseFd(out[1]);
  CloseFd(err[1]);
  CloseFd(report[1]);
  child.stdin_fd_ = std::exchange(in[1], -1);
  child.stdout_fd_ = std::exchange(out[0], -1);
  child.stderr_fd_ = std::exchange(err[0], -1);

  // EOF: exec succeeded (the report pipe closed on exec); an int: its errno.
  int exec_errno = 0;
  ssize_t n;
  do {
    n = ::read(report[0], &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  CloseFd(report[0]);
  if (n == static_cast<ssize_t>(sizeof(exec_errno))) {
    (void)child.Wait(absl::InfiniteDuration());
    return ErrnoStatus(exec_errno, absl::StrCat("cannot execute ", path));
  }
  return child;
}

absl::StatusOr<int> ExitCode(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) {
    const int sig = WTERMSIG(wait_status);
    const char* name = ::sigabbrev_np(sig);
    return absl::InternalError(absl::StrCat("killed by signal ", sig, " (SIG", name ? name : "?", ")"));
  }
  return absl::InternalError(absl::StrCat("unexpected wait status ", wait_status));
}

absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         const std::string& stdin_text, absl::Duration timeout) {
  // A child that exits before reading all its input must not kill the test
  // with SIGPIPE (children get the default disposition back).
  ::signal(SIGPIPE, SIG_IGN);
  auto spawned = Spawn(argv, {.pipe_stdin = true, .pipe_stdout = true, .pipe_stderr = true});
  if (!spawned.ok()) return spawned.status();
  Child& child = *spawned;
  ::fcntl(child.stdin_fd(), F_SETFL, O_NONBLOCK);
  const absl::Time deadline = DeadlineAfter(timeout);
  ProcessResult result;
  size_t written = 0;
  bool out_open = true, err_open = true;
  if (stdin_text.empty()) child.CloseStdin();
  bool timed_out = false;
  while (out_open || err_open || child.stdin_fd() >= 0) {
    // poll() skips negative descriptors (a closed pipe would report POLLHUP forever).
    pollfd fds[3] = {{out_open ? child.stdout_fd() : -1, POLLIN, 0},
                     {err_open ? child.stderr_fd() : -1, POLLIN, 0},
                     {child.stdin_fd(), POLLOUT, 0}};
    const int n = ::poll(fds, child.stdin_fd() >= 0 ? 3 : 2, PollTimeoutMs(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "poll");
    if (n == 0) {
      timed_out = true;
      break;
    }
    char buf[65536];
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents == 0) continue;
      const ssize_t r = ::read(fds[i].fd, buf, sizeof(buf));
      if (r > 0) {
        (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        (i == 0 ? out_open : err_open) = false;
      }
    }
    if (child.stdin_fd() >= 0 && fds[2].revents != 0) {
      const ssize_t w = ::write(child.stdin_fd(), stdin_text.data() + written, stdin_text.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == stdin_text.size()) child.CloseStdin();
    }
  }
  if (!timed_out && child.Wait(absl::Now() < deadline ? deadline - absl::Now() : absl::ZeroDuration()).ok()) {
    result.wait_status = child.wait_status();
    result.exit_code = WIFEXITED(result.wait_status) ? WEXITSTATUS(result.wait_status) : -1;
    return result;
  }
  (void)child.Kill(SIGKILL);
  (void)child.Wait(absl::InfiniteDuration());
  return absl::DeadlineExceededError(absl::StrCat(argv[0], " did not finish within ",
                                                  absl::FormatDuration(timeout), "; stdout: ",
                                                  result.out, "; stderr: ", result.err));
}

}  // namespace hr::testing
