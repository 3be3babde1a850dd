// Verification of the database copy (see copy_verify.h).

#include "copy_verify.h"

#include <algorithm>

namespace plan::pg {
namespace {

const char* kCatalogQuery = R"(SELECT n.nspname, c.relname, c.relkind::text,
  CASE WHEN c.relkind = 'r' THEN pg_relation_size(c.oid) + COALESCE(pg_relation_size(NULLIF(c.reltoastrelid, 0)), 0) ELSE 0 END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2)";

}  // namespace

std::vector<Relation> read_catalog(Connection& conn) {
  std::vector<Result> cat;
  try {
    cat = conn.exec(kCatalogQuery, {}, 10000000);
  } catch (const OperationError& e) {
    throw with_context("reading the catalog: ", e);
  }
  if (cat.empty()) throw OperationError(FailureKind::Error, "reading the catalog: ");
  std::vector<Relation> out;
  for (const auto& row : cat.back().rows)
    out.push_back(
        {row[0].value_or(""), row[1].value_or(""), row[2].value_or("r")[0], std::stoll(row[3].value_or("0"))});
  return out;
}

DbState read_state(Connection& conn) {
  DbState out;
  out.relations = read_catalog(conn);
  // Batches of UNION ALL: one round trip per hundred relations.
  for (char kind : {'r', 'S'}) {
    std::vector<const Relation*> rels;
    for (const auto& r : out.relations)
      if (r.kind == kind) rels.push_back(&r);
    for (size_t from = 0; from < rels.size(); from += 100) {
      std::string sql;
      for (size_t i = from; i < std::min(rels.size(), from + 100); ++i) {
        if (!sql.empty()) sql += " UNION ALL ";
        sql += "SELECT " + std::to_string(i) +
               (kind == 'r' ? ", count(*)::text FROM ONLY " : ", last_value::text || '/' || is_called::text FROM ") +
               rels[i]->qualified();
      }
      const std::string doing = kind == 'r' ? "counting rows: " : "reading sequences: ";
      std::vector<Result> res;
      try {
        res = conn.exec(sql, {}, 1000);
      } catch (const OperationError& e) {
        throw with_context(doing, e);
      }
      if (res.empty()) throw OperationError(FailureKind::Error, doing);
      for (const auto& row : res.back().rows) {
        const Relation* r = rels[std::stoul(row[0].value_or("0"))];
        if (kind == 'r')
          out.rows[r->label()] = std::stoll(row[1].value_or("0"));
        else
          out.sequences[r->label()] = row[1].value_or("");
      }
    }
  }
  try {
    out.large_objects = std::stoll(conn.value("SELECT count(*) FROM pg_largeobject_metadata").value_or("0"));
  } catch (const OperationError& e) {
    throw with_context("counting large objects: ", e);
  }
  return out;
}

std::vector<std::string> differences(const DbState& s, const DbState& t) {
  std::vector<std::string> out;
  for (const auto& [name, n] : s.rows) {
    auto it = t.rows.find(name);
    if (it == t.rows.end()) {
      out.push_back("table " + name + " is missing on the target");
    } else if (it->second != n) {
      long long d = it->second - n;
      out.push_back(name + " has " + std::to_string(n) + " rows on the source, " + std::to_string(it->second) +
                    " on the target (" + std::to_string(d < 0 ? -d : d) + (d < 0 ? " fewer)" : " more)"));
    }
  }
  for (const auto& [name, n] : t.rows)
    if (!s.rows.count(name)) out.push_back("table " + name + " is on the target only (" + std::to_string(n) + " rows)");
  for (const auto& [name, v] : s.sequences) {
    auto it = t.sequences.find(name);
    if (it == t.sequences.end())
      out.push_back("sequence " + name + " is missing on the target");
    else if (it->second != v)
      out.push_back("sequence " + name + " is at " + v + " on the source, " + it->second + " on the target");
  }
  for (const auto& [name, v] : t.sequences)
    if (!s.sequences.count(name)) out.push_back("sequence " + name + " is on the target only");
  if (s.large_objects != t.large_objects)
    out.push_back(std::to_string(s.large_objects) + " large objects on the source, " + std::to_string(t.large_objects) +
                  " on the target");
  return out;
}

std::string join_differences(const std::vector<std::string>& d) {
  std::string s;
  for (size_t i = 0; i < d.size() && i < 8; ++i) s += (i ? "; " : "") + d[i];
  if (d.size() > 8) s += "; and " + std::to_string(d.size() - 8) + " more";
  return s;
}

long long DbState::total_rows() const {
  long long n = 0;
  for (const auto& [k, v] : rows) n += v;
  return n;
}

std::vector<std::vector<size_t>> split_by_size(const std::vector<Relation>& tables, int n) {
  std::vector<std::vector<size_t>> groups(static_cast<size_t>(std::max(1, n)));
  std::vector<long long> load(groups.size(), 0);
  std::vector<size_t> order(tables.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return tables[a].bytes > tables[b].bytes; });
  for (size_t i : order) {
    size_t lightest = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    groups[lightest].push_back(i);
    load[lightest] += std::max(1LL, tables[i].bytes);
  }
  return groups;
}

}  // namespace plan::pg
