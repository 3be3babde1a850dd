#pragma once
// One client connection of the forwarder and the direct-tcpip channel it goes through: the two
// buffers between them and the moving of bytes both ways (forwarder.cpp says why neither
// direction buffers without bound). Only the forwarder uses it; it runs libssh in one thread, so
// no session mutex is taken here.

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "ssh/libssh_handles.h"

namespace plan::ssh::forwarding {

using Clock = std::chrono::steady_clock;

constexpr size_t kBufSize = 256 * 1024;  // per direction and connection
// The receive window we give each channel (OpenSSH's ssh -L gives 2 MB; libssh alone 1.28 MB),
// topped up after half of it has arrived while the client keeps up. It bounds what a slow client
// leaves buffered here: about one window per connection.
constexpr uint32_t kWindow = 4u << 20;
constexpr uint64_t kWindowRefill = kWindow / 2;

std::string errno_text(int e);

struct Buf {
  std::unique_ptr<char[]> data;
  size_t off = 0, len = 0;
  size_t size() const { return len - off; }
  bool empty() const { return off == len; }
  void ensure() {
    if (!data) data = std::make_unique<char[]>(kBufSize);
  }
  void consumed(size_t n) {
    off += n;
    if (off == len) off = len = 0;
  }
};

struct Conn {
  enum class St { Waiting, Opening, Open };
  uint64_t n = 0;
  int fd = -1;
  std::string peer_ip;
  int peer_port = 0;
  St st = St::Waiting;
  ssh_channel_callbacks_struct cb{};
  ChannelHandle ch;            // after cb: freed first, while its callbacks still point here
  Buf up, down;                // client -> channel, channel -> client
  bool client_eof = false;     // the client shut its sending side
  bool eof_sent = false;       // ... and we passed that on to the channel
  bool remote_eof = false;     // the target shut its sending side
  bool remote_closed = false;  // the channel is closed by the server
  bool shut_wr = false;        // ... and we passed the EOF on to the client
  bool pending = false;        // libssh holds channel data we did not take yet
  std::string failure;         // set when the connection must end with an error
  uint64_t bytes_up = 0, bytes_down = 0;
  uint64_t window_mark = 0;  // bytes_down when the window was last topped up
  Clock::time_point since = Clock::now();

  std::string peer() const { return peer_ip + ":" + std::to_string(peer_port); }
  /// Both directions are done: nothing left to move either way.
  bool finished() const;
};

/// Points the channel's data, EOF and close callbacks at `c`.
void set_channel_callbacks(Conn& c);

/// Tops the channel's receive window up to kWindow.
void grow_window(Conn& c);

/// Moves bytes for one open connection; sets c.failure, or leaves it finished() when both sides
/// are done. `session` names libssh's errors.
void move_bytes(Conn& c, ssh_session session, short revents);

/// libssh frees a session's channels with the session: a channel whose session is being freed is
/// let go of here instead of freed twice.
inline void leave_to_session(ChannelHandle& ch) { (void)ch.release(); }

}  // namespace plan::ssh::forwarding
