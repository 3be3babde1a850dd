#include "util/libpq.h"

#include <stdexcept>

#include "util/shared_library.h"

namespace plan {

namespace {

LibPq load() {
  static SharedLibrary lib("libpq.so.5", "libpq (Debian: libpq5)");
  LibPq p;
  lib.bind(p.PQbackendPID, "PQbackendPID");
  lib.bind(p.PQcancel, "PQcancel");
  lib.bind(p.PQclear, "PQclear");
  lib.bind(p.PQcmdStatus, "PQcmdStatus");
  lib.bind(p.PQconnectPoll, "PQconnectPoll");
  lib.bind(p.PQconnectStartParams, "PQconnectStartParams");
  lib.bind(p.PQconnectdbParams, "PQconnectdbParams");
  lib.bind(p.PQconninfoFree, "PQconninfoFree");
  lib.bind(p.PQconninfoParse, "PQconninfoParse");
  lib.bind(p.PQconsumeInput, "PQconsumeInput");
  lib.bind(p.PQerrorMessage, "PQerrorMessage");
  lib.bind(p.PQexec, "PQexec");
  lib.bind(p.PQexecParams, "PQexecParams");
  lib.bind(p.PQfinish, "PQfinish");
  lib.bind(p.PQflush, "PQflush");
  lib.bind(p.PQfname, "PQfname");
  lib.bind(p.PQfreeCancel, "PQfreeCancel");
  lib.bind(p.PQfreemem, "PQfreemem");
  lib.bind(p.PQftype, "PQftype");
  lib.bind(p.PQgetCancel, "PQgetCancel");
  lib.bind(p.PQgetResult, "PQgetResult");
  lib.bind(p.PQgetisnull, "PQgetisnull");
  lib.bind(p.PQgetlength, "PQgetlength");
  lib.bind(p.PQgetvalue, "PQgetvalue");
  lib.bind(p.PQisBusy, "PQisBusy");
  lib.bind(p.PQnfields, "PQnfields");
  lib.bind(p.PQntuples, "PQntuples");
  lib.bind(p.PQputCopyEnd, "PQputCopyEnd");
  lib.bind(p.PQresultErrorField, "PQresultErrorField");
  lib.bind(p.PQresultErrorMessage, "PQresultErrorMessage");
  lib.bind(p.PQresultStatus, "PQresultStatus");
  lib.bind(p.PQsendQuery, "PQsendQuery");
  lib.bind(p.PQsendQueryParams, "PQsendQueryParams");
  lib.bind(p.PQsetnonblocking, "PQsetnonblocking");
  lib.bind(p.PQsocket, "PQsocket");
  lib.bind(p.PQstatus, "PQstatus");
  p.error = lib.error();
  return p;
}

}  // namespace

std::string sql_literal(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

const LibPq& libpq() {
  static const LibPq lib = load();
  if (!lib.error.empty()) throw std::runtime_error(lib.error);
  return lib;
}

}  // namespace plan
