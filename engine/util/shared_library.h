#pragma once
// A shared library opened the first time it is needed instead of linked: libcurl (the http check)
// and libpq (the postgres steps and checks) pull in some thirty libraries between them (OpenSSL's
// TLS, Kerberos, LDAP, GnuTLS, HTTP/2...) that every `plan` command paid for at start-up, in time
// and in memory, whether or not its plan used them.

#include <string>

namespace plan {

class SharedLibrary {
 public:
  /// Opens `soname` (RTLD_NOW, kept open for the life of the process). `package` names what
  /// provides it, for the error ("install libpq5").
  SharedLibrary(const char* soname, const char* package);
  SharedLibrary(const SharedLibrary&) = delete;
  SharedLibrary& operator=(const SharedLibrary&) = delete;

  /// Points `fn` at the library's `name`; a missing one makes error() say so.
  template <class Fn>
  void bind(Fn& fn, const char* name) {
    fn = reinterpret_cast<Fn>(symbol(name));
  }

  /// Why the library cannot be used; empty when it was opened and every bound symbol found.
  const std::string& error() const { return error_; }

 private:
  void* symbol(const char* name);

  void* handle_ = nullptr;
  std::string soname_;
  std::string error_;
};

}  // namespace plan
