#pragma once
// libpq, opened the first time something talks to PostgreSQL rather than linked
// (util/shared_library.h says why): the postgres steps and checks (steps/postgres) and the shared
// state (state/pg_state). Its functions keep their names: libpq().PQexec(...).

#include <libpq-fe.h>

#include <string>
#include <vector>

namespace plan {

struct LibPq {
  decltype(&::PQbackendPID) PQbackendPID = nullptr;
  decltype(&::PQcancel) PQcancel = nullptr;
  decltype(&::PQclear) PQclear = nullptr;
  decltype(&::PQcmdStatus) PQcmdStatus = nullptr;
  decltype(&::PQconnectPoll) PQconnectPoll = nullptr;
  decltype(&::PQconnectStartParams) PQconnectStartParams = nullptr;
  decltype(&::PQconnectdbParams) PQconnectdbParams = nullptr;
  decltype(&::PQconninfoFree) PQconninfoFree = nullptr;
  decltype(&::PQconninfoParse) PQconninfoParse = nullptr;
  decltype(&::PQconsumeInput) PQconsumeInput = nullptr;
  decltype(&::PQerrorMessage) PQerrorMessage = nullptr;
  decltype(&::PQexec) PQexec = nullptr;
  decltype(&::PQexecParams) PQexecParams = nullptr;
  decltype(&::PQfinish) PQfinish = nullptr;
  decltype(&::PQflush) PQflush = nullptr;
  decltype(&::PQfname) PQfname = nullptr;
  decltype(&::PQfreeCancel) PQfreeCancel = nullptr;
  decltype(&::PQfreemem) PQfreemem = nullptr;
  decltype(&::PQftype) PQftype = nullptr;
  decltype(&::PQgetCancel) PQgetCancel = nullptr;
  decltype(&::PQgetResult) PQgetResult = nullptr;
  decltype(&::PQgetisnull) PQgetisnull = nullptr;
  decltype(&::PQgetlength) PQgetlength = nullptr;
  decltype(&::PQgetvalue) PQgetvalue = nullptr;
  decltype(&::PQisBusy) PQisBusy = nullptr;
  decltype(&::PQnfields) PQnfields = nullptr;
  decltype(&::PQntuples) PQntuples = nullptr;
  decltype(&::PQputCopyEnd) PQputCopyEnd = nullptr;
  decltype(&::PQresultErrorField) PQresultErrorField = nullptr;
  decltype(&::PQresultErrorMessage) PQresultErrorMessage = nullptr;
  decltype(&::PQresultStatus) PQresultStatus = nullptr;
  decltype(&::PQsendQuery) PQsendQuery = nullptr;
  decltype(&::PQsendQueryParams) PQsendQueryParams = nullptr;
  decltype(&::PQsetnonblocking) PQsetnonblocking = nullptr;
  decltype(&::PQsocket) PQsocket = nullptr;
  decltype(&::PQstatus) PQstatus = nullptr;
  std::string error;  // why it cannot be used; empty when every function was found
};

/// libpq's NULL-terminated keyword and value arrays over `kw` (pairs of strings, which must
/// outlive them), for PQconnectdbParams and PQconnectStartParams.
struct ConnKeywords {
  std::vector<const char*> keys, values;
  template <class Pairs>
  explicit ConnKeywords(const Pairs& kw) {
    for (const auto& entry : kw) {
      keys.push_back(entry.first.c_str());
      values.push_back(entry.second.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
  }
};

/// 'text' as an SQL literal, for a connection with standard_conforming_strings on (only quotes
/// are doubled); `text` must hold no NUL byte.
std::string sql_literal(const std::string& text);

/// libpq with every function above bound; throws std::runtime_error saying why it cannot be
/// loaded ("cannot load libpq.so.5 (...): install libpq (Debian: libpq5)").
const LibPq& libpq();

}  // namespace plan
