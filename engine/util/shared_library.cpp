#include "util/shared_library.h"

#include <dlfcn.h>

namespace plan {

SharedLibrary::SharedLibrary(const char* soname, const char* package) : soname_(soname) {
  handle_ = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (!handle_) {
    const char* why = ::dlerror();
    error_ = "cannot load " + soname_ + " (" + (why ? why : "unknown error") + "): install " + package;
  }
}

void* SharedLibrary::symbol(const char* name) {
  if (!handle_) return nullptr;
  void* p = ::dlsym(handle_, name);
  if (!p && error_.empty()) error_ = soname_ + " has no " + name + ": not the version plan was built for";
  return p;
}

}  // namespace plan
