#pragma once
// Owning handles for libssh objects: freed once, on every path, in the right order (a channel or
// SFTP file before its session). Only for files that include libssh themselves; session.h keeps
// libssh out of its callers.
//
// Freeing needs the session's mutex like every other libssh call: a handle must be reset (or go
// out of scope) while the caller holds SshSession::mutex().

#include <libssh/libssh.h>
#include <libssh/sftp.h>

#include <memory>

namespace plan::ssh {

struct ChannelFree {
  void operator()(ssh_channel c) const {
    if (ssh_channel_is_open(c)) ssh_channel_close(c);
    ssh_channel_free(c);
  }
};
struct SftpSessionFree {
  void operator()(sftp_session s) const { sftp_free(s); }
};
struct SftpFileClose {
  void operator()(sftp_file f) const { sftp_close(f); }
};
struct SftpAttributesFree {
  void operator()(sftp_attributes a) const { sftp_attributes_free(a); }
};
struct KeyFree {
  void operator()(ssh_key k) const { ssh_key_free(k); }
};

using ChannelHandle = std::unique_ptr<ssh_channel_struct, ChannelFree>;
using SftpHandle = std::unique_ptr<sftp_session_struct, SftpSessionFree>;
using SftpFileHandle = std::unique_ptr<sftp_file_struct, SftpFileClose>;
using SftpAttributesHandle = std::unique_ptr<sftp_attributes_struct, SftpAttributesFree>;
using KeyHandle = std::unique_ptr<ssh_key_struct, KeyFree>;

}  // namespace plan::ssh
