// The data path of one forwarded connection: client socket <-> buffers <-> channel.

#include "connection.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace plan::ssh::forwarding {
namespace {

int on_data(ssh_session, ssh_channel, void* data, uint32_t len, int is_stderr, void* user) {
  auto* c = static_cast<Conn*>(user);
  if (is_stderr) return static_cast<int>(len);                         // direct-tcpip has no stderr; drop it
  if (c->fd < 0 || !c->failure.empty()) return static_cast<int>(len);  // nobody to give it to
  const char* p = static_cast<const char*>(data);
  size_t used = 0;
  if (c->down.empty()) {
    // Straight to the client: most of the time the socket takes everything and nothing is copied.
    ssize_t w = ::send(c->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0) {
      used = static_cast<size_t>(w);
    } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      c->failure = "client: " + errno_text(errno);
      return static_cast<int>(len);
    }
    if (used < len) {
      c->down.ensure();
      size_t take = std::min<size_t>(len - used, kBufSize);
      std::memcpy(c->down.data.get(), p + used, take);
      c->down.off = 0;
      c->down.len = take;
      used += take;
    }
  }
  c->pending = used < len;
  c->bytes_down += used;
  return static_cast<int>(used);
}

void on_eof(ssh_session, ssh_channel, void* user) { static_cast<Conn*>(user)->remote_eof = true; }

void on_close(ssh_session, ssh_channel, void* user) {
  auto* c = static_cast<Conn*>(user);
  c->remote_closed = true;
  c->remote_eof = true;
}

/// target -> client: the buffer, then what libssh still holds. False when the connection failed.
bool move_down(Conn& c, ssh_session session) {
  for (;;) {
    if (!c.down.empty()) {
      ssize_t w = ::send(c.fd, c.down.data.get() + c.down.off, c.down.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
        c.failure = "client: " + errno_text(errno);
        return false;
      }
      c.down.consumed(static_cast<size_t>(w));
      if (!c.down.empty()) break;
    }
    if (!c.pending) break;
    // libssh holds more: its buffer is not empty, so this read copies and never polls.
    c.down.ensure();
    int n = ssh_channel_read_nonblocking(c.ch.get(), c.down.data.get(), kBufSize, 0);
    if (n == SSH_EOF) n = 0;
    if (n < 0) {
      c.failure = std::string("channel: ") + ssh_get_error(session);
      return false;
    }
    c.down.off = 0;
    c.down.len = static_cast<size_t>(n);
    c.bytes_down += static_cast<uint64_t>(n);
    if (static_cast<size_t>(n) < kBufSize) c.pending = false;
    if (n == 0) break;
  }
  if (!c.pending && !c.remote_eof && c.bytes_down - c.window_mark >= kWindowRefill) grow_window(c);
  if (c.down.empty() && !c.pending && c.remote_eof && !c.shut_wr) {
    ::shutdown(c.fd, SHUT_WR);
    c.shut_wr = true;
  }
  return true;
}

/// client -> target: one read while the buffer is empty, written as far as the window allows.
void move_up(Conn& c, ssh_session session, short revents) {
  if (c.up.empty() && !c.client_eof && (revents & (POLLIN | POLLHUP))) {
    c.up.ensure();
    ssize_t n = ::recv(c.fd, c.up.data.get(), kBufSize, MSG_DONTWAIT);
    if (n > 0) {
      c.up.off = 0;
      c.up.len = static_cast<size_t>(n);
    } else if (n == 0) {
      c.client_eof = true;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      c.failure = "client: " + errno_text(errno);
      return;
    }
  }
  if (!c.up.empty() && !c.remote_closed) {
    uint32_t window = ssh_channel_window_size(c.ch.get());
    if (window > 0) {
      size_t len = std::min<size_t>(c.up.size(), window);
      int w = ssh_channel_write(c.ch.get(), c.up.data.get() + c.up.off, static_cast<uint32_t>(len));
      if (w < 0) {
        c.failure = std::string("channel: ") + ssh_get_error(session);
        return;
      }
      c.up.consumed(static_cast<size_t>(w));
      c.bytes_up += static_cast<uint64_t>(w);
    }
  }
  if (c.client_eof && c.up.empty() && !c.eof_sent && !c.remote_closed) {
    ssh_channel_send_eof(c.ch.get());
    c.eof_sent = true;
  }
}

}  // namespace

std::string errno_text(int e) { return std::strerror(e); }

bool Conn::finished() const {
  bool done_down = remote_eof && down.empty() && !pending;
  bool done_up = client_eof && up.empty();
  return done_down && (done_up || remote_closed);
}

void set_channel_callbacks(Conn& c) {
  ssh_callbacks_init(&c.cb);
  c.cb.userdata = &c;
  c.cb.channel_data_function = on_data;
  c.cb.channel_eof_function = on_eof;
  c.cb.channel_close_function = on_close;
  ssh_set_channel_callbacks(c.ch.get(), &c.cb);
}

/// libssh has no call for it, but a read of that many bytes grows the window first; reading the
/// (always empty) stderr stream with no timeout returns at once with nothing.
void grow_window(Conn& c) {
  char none = 0;
  ssh_channel_read_timeout(c.ch.get(), &none, kWindow, 1, 0);
  c.window_mark = c.bytes_down;
}

void move_bytes(Conn& c, ssh_session session, short revents) {
  if (c.st != Conn::St::Open || !c.failure.empty()) return;
  if (revents & POLLERR) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    c.failure = "client: " + errno_text(err ? err : ECONNRESET);
    return;
  }
  if (!move_down(c, session)) return;
  move_up(c, session, revents);
}

}  // namespace plan::ssh::forwarding
