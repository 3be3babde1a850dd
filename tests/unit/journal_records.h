#pragma once
// A journal record as the unit tests of run_history, its view and the report model write them by
// hand: `type`, the clock `t` (epoch ms), and the fields given.

#include "plan/model.h"

namespace plan::test {

inline Json rec(const char* type, long long t, Json fields = Json::object()) {
  fields["type"] = type;
  fields["t"] = t;
  return fields;
}

}  // namespace plan::test
