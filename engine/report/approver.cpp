#include "report/approver.h"

#include <fcntl.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <cctype>
#include <sstream>

#include "report/text.h"

namespace plan {

namespace {

// A usable prompt needs a controlling terminal we are in the foreground of, and a stdin that is a
// terminal too: a run fed from a pipe or started by CI must not stop to wait for a person.
int open_prompt_terminal() {
  if (!isatty(STDIN_FILENO)) return -1;
  int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return -1;
  if (tcgetpgrp(fd) != getpgrp()) {
    close(fd);
    return -1;
  }
  return fd;
}

void write_all(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t n = write(fd, s.data() + done, s.size() - done);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

}  // namespace

std::string format_approval_request(const ApprovalRequest& req) {
  std::ostringstream o;
  o << "approval needed: " << req.step_id << "\n";
  if (!req.prompt.empty()) o << "  " << req.prompt << "\n";
  o << "  remaining steps: " << join(req.remaining, ", ", "none") << "\n";
  for (const auto& w : req.windows) o << "  window " << w << "\n";
  if (req.rollback.empty()) {
    o << "  if a later step fails: nothing to roll back\n";
  } else {
    o << "  if a later step fails, rollback would:\n";
    for (const auto& r : req.rollback) o << "    - " << r << "\n";
  }
  return o.str();
}

CliApprover::CliApprover(CliApproverOptions opts, std::ostream& log) : opts_(std::move(opts)), log_(log) {}

bool CliApprover::can_answer(const std::string& step_id) const {
  if (opts_.yes || opts_.approve_ids.count(step_id)) return true;
  if (!opts_.allow_prompt) return false;
  int fd = open_prompt_terminal();
  if (fd < 0) return false;
  close(fd);
  return true;
}

bool CliApprover::decided(const std::string& step, bool granted, const std::string& how, const std::string& line) {
  if (opts_.say) {
    opts_.say(line);
  } else {
    log_ << line << "\n";
    log_.flush();
  }
  if (opts_.notify) opts_.notify(step, granted ? "granted" : "refused", how);
  return granted;
}

bool CliApprover::approve(const ApprovalRequest& req, const CancelToken& cancel) {
  std::lock_guard lk(mu_);
  const std::string& id = req.step_id;
  if (opts_.notify) opts_.notify(id, "requested", "");
  if (opts_.approve_ids.count(id)) return decided(id, true, "--approve", "approved " + id + " (--approve " + id + ")");
  if (opts_.yes) return decided(id, true, "--yes", "approved " + id + " (--yes)");
  int fd = opts_.allow_prompt ? open_prompt_terminal() : -1;
  if (fd < 0)
    return decided(id, false, "no terminal",
                   "not approved: " + id + " needs approval and there is no terminal to ask on; run with --approve " +
                       id + " (or --yes to approve every gate)");
  if (opts_.pause_progress) opts_.pause_progress(true);
  bool ok = prompt(fd, req, cancel);
  if (opts_.pause_progress) opts_.pause_progress(false);
  close(fd);
  return decided(id, ok, "terminal",
                 ok ? "approved " + id + " (at the terminal)" : "not approved: " + id + " (refused at the terminal)");
}

bool CliApprover::prompt(int fd, const ApprovalRequest& req, const CancelToken& cancel) {
  tcflush(fd, TCIFLUSH);  // keystrokes typed while steps ran are not an answer
  write_all(fd, "\n" + format_approval_request(req) + "Approve " + req.step_id + "? [y/N] ");
  std::string answer;
  for (;;) {
    if (cancel.cancelled()) {
      write_all(fd, "\n(cancelled)\n");
      return false;
    }
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, 200);
    if (r < 0) return false;
    if (r == 0) continue;
    char c = 0;
    ssize_t n = read(fd, &c, 1);
    if (n <= 0) return false;
    if (c == '\n' || c == '\r') break;
    answer += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return answer == "y" || answer == "yes";
}

}  // namespace plan
