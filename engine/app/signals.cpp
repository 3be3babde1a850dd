#include "app/signals.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include "run/runner.h"

namespace plan {

namespace {

int g_write_fd = -1;
struct sigaction g_old_int, g_old_term;

extern "C" void on_signal(int sig) {
  int saved = errno;
  char c = static_cast<char>(sig);
  if (g_write_fd >= 0) {
    ssize_t n = write(g_write_fd, &c, 1);
    (void)n;  // a full pipe means many signals are already pending: dropping one changes nothing
  }
  errno = saved;
}

}  // namespace

InterruptForwarder::InterruptForwarder() {
  if (pipe2(pipe_, O_CLOEXEC) != 0) return;
  fcntl(pipe_[1], F_SETFL, O_NONBLOCK);
  g_write_fd = pipe_[1];
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
  thread_ = std::thread([this] { loop(); });
}

InterruptForwarder::~InterruptForwarder() {
  if (pipe_[1] < 0) return;
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
  g_write_fd = -1;
  char zero = 0;  // tells the thread to end
  ssize_t n = write(pipe_[1], &zero, 1);
  (void)n;
  if (thread_.joinable()) thread_.join();
  close(pipe_[0]);
  close(pipe_[1]);
}

void InterruptForwarder::attach(Runner* runner) {
  std::lock_guard lk(mu_);
  runner_ = runner;
  delivered_ = 0;
  if (runner_) deliver(count_.load());
}

void InterruptForwarder::deliver(int n) {
  for (; delivered_ < n; ++delivered_) {
    if (delivered_ == 0) {
      // Through the runner's observers: the console clears its live status line first.
      runner_->say("interrupt: no new step will start; waiting for the running ones (interrupt again to cancel them)");
      runner_->request_stop();
    } else if (delivered_ == 1) {
      runner_->say("interrupt: cancelling the running steps");
      runner_->cancel();
    }
  }
}

void InterruptForwarder::loop() {
  for (;;) {
    char c = 0;
    ssize_t n = read(pipe_[0], &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || c == 0) return;
    int total = count_.fetch_add(1) + 1;
    std::lock_guard lk(mu_);
    if (runner_) deliver(total);
  }
}

}  // namespace plan
