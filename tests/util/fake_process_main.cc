// A stand-in server for server_process_test and subprocess_test: each mode
// is one way a real server (or command) can behave. No sleeps: it blocks in
// sigwait / pause / read until a signal or input arrives.
//
//   serve [CODE]    print the serving line and a second line, wait for
//                   SIGTERM, print "draining", exit CODE (default 0)
//   exit CODE       print "failing" and exit CODE without serving
//   silent          print nothing, block until killed
//   ignore_term     print the serving line, ignore SIGTERM, block until killed
//   default_term    print the serving line, block with SIGTERM's default
//                   action (dies of it; shows the signal state was reset)
//   malformed       print a serving line with no grpc port, then as serve
//   echo            copy stdin to stdout, print "to stderr" on stderr, exit 3
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr char kServing[] = "headroom-server: serving grpc=127.0.0.1:43121 metrics=127.0.0.1:43122\n";

void Print(const char* s) {
  std::fputs(s, stdout);
  std::fflush(stdout);
}

[[noreturn]] void WaitForTermAndExit(int code) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  Print("draining\n");
  std::exit(code);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  const int code = argc > 2 ? std::atoi(argv[2]) : 0;
  // SIGTERM stays blocked while we print, so sigwait receives it.
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  if (mode == "serve" || mode == "malformed") {
    sigprocmask(SIG_BLOCK, &term, nullptr);
    Print(mode == "serve" ? kServing : "headroom-server: serving metrics=127.0.0.1:1\n");
    Print("log line after ready\n");
    WaitForTermAndExit(code);
  }
  if (mode == "exit") {
    Print("failing\n");
    return code;
  }
  if (mode == "silent") {
    for (;;) pause();
  }
  if (mode == "ignore_term") {
    signal(SIGTERM, SIG_IGN);
    Print(kServing);
    for (;;) pause();
  }
  if (mode == "default_term") {
    sigset_t blocked;
    sigprocmask(SIG_BLOCK, nullptr, &blocked);
    struct sigaction action;
    sigaction(SIGTERM, nullptr, &action);
    if (sigismember(&blocked, SIGTERM) || action.sa_handler == SIG_IGN) {
      Print("SIGTERM blocked or ignored at start\n");
      return 2;
    }
    Print(kServing);
    for (;;) pause();
  }
  if (mode == "echo") {
    char buf[4096];
    ssize_t n;
    while ((n = read(STDIN_FILENO, buf, sizeof(buf))) > 0) fwrite(buf, 1, static_cast<size_t>(n), stdout);
    fputs("to stderr", stderr);
    return 3;
  }
  std::fprintf(stderr, "unknown mode '%s'\n", mode.c_str());
  return 64;
}
