#pragma once
// What the database copy verifies, read the same way on both sides: every table's row count,
// every sequence's value and the number of large objects (tables and sequences that belong to
// extensions are left out, as pg_dump leaves them out).

#include <map>
#include <string>
#include <vector>

#include "connection.h"

namespace plan::pg {

struct Relation {
  std::string schema, name;
  char kind = 'r';      // 'r' table, 'S' sequence
  long long bytes = 0;  // on disk, with its TOAST table (tables only)
  std::string qualified() const { return quote_ident(schema) + "." + quote_ident(name); }
  std::string label() const { return schema + "." + name; }
};

struct DbState {
  std::vector<Relation> relations;
  std::map<std::string, long long> rows;         // by label
  std::map<std::string, std::string> sequences;  // label -> "last_value/is_called"
  long long large_objects = 0;
  long long total_rows() const;
};

/// The tables and sequences (with sizes), in schema and name order. Throws OperationError
/// ("reading the catalog: ...").
std::vector<Relation> read_catalog(Connection& conn);

/// Reads the catalog, row counts, sequence values and the number of large objects, in the
/// connection's current transaction (the copy's snapshot on the source). Throws OperationError
/// ("counting rows: ...").
DbState read_state(Connection& conn);

/// What differs between source and target, one item per difference:
/// "irc.messages has 1000 rows on the source, 998 on the target (2 fewer)".
std::vector<std::string> differences(const DbState& source, const DbState& target);

/// The first eight differences joined with "; ", and how many more there are.
std::string join_differences(const std::vector<std::string>& d);

/// Splits tables into `n` groups of about equal size (largest first, each to the lightest group):
/// indices into `tables`. Groups may be empty when there are fewer tables than groups.
std::vector<std::vector<size_t>> split_by_size(const std::vector<Relation>& tables, int n);

}  // namespace plan::pg
