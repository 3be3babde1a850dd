#include "load/inventory.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "load/schema.h"

namespace plan {
namespace {

/// A variable as the inventory sets it, with where.
struct Var {
  Json value;
  Mark mark;
};
using Vars = std::map<std::string, Var>;

struct GroupDef {
  std::vector<std::string> hosts;     // written under this group, in order
  std::vector<std::string> children;  // in order
  Vars vars;
  Mark mark;
};

class Reader {
 public:
  Reader(const std::string& path, const Json& doc, const MarkNode& marks, std::vector<Diagnostic>& diags)
      : path_(path), doc_(doc), marks_(marks), diags_(diags) {}

  Inventory read() {
    if (!doc_.is_object()) {
      error({"<root>"}, "an inventory is a map of groups (all: {hosts: ..., children: ...}), found " +
                            std::string(doc_.is_array() ? "a list" : "a single value"));
      return {};
    }
    for (auto it = doc_.begin(); it != doc_.end(); ++it) group(it.key(), it.value(), {it.key()}, 0);
    return build();
  }

 private:
  void error(const JsonPath& p, std::string msg, bool key = false) {
    Mark m = p.size() == 1 && p[0] == "<root>" ? marks_.mark
             : key                             ? key_mark_of(doc_, marks_, p)
                                               : mark_of(doc_, marks_, p);
    diags_.push_back({m, std::move(msg)});
  }

  GroupDef& def(const std::string& name, const JsonPath& p) {
    auto [it, fresh] = groups_.try_emplace(name);
    if (fresh) {
      order_.push_back(name);
      it->second.mark = key_mark_of(doc_, marks_, p);
    }
    return it->second;
  }

  void merge_vars(const Json& v, const JsonPath& p, Vars& into) {
    if (v.is_null()) return;
    if (!v.is_object()) {
      error(p, "expected a map of variables");
      return;
    }
    for (auto it = v.begin(); it != v.end(); ++it)
      into[it.key()] = {it.value(), mark_of(doc_, marks_, extend(p, it.key()))};
  }

  static JsonPath extend(JsonPath p, const std::string& k) {
    p.push_back(k);
    return p;
  }

  void group(const std::string& name, const Json& v, const JsonPath& p, int depth) {
    def(name, p);
    depth_[name] = std::max(depth_[name], depth);
    if (depth > 64) return error(p, "groups nested more than 64 deep", true);
    if (v.is_null()) return;
    if (!v.is_object()) return error(p, "group '" + name + "' must be a map with hosts, vars or children");
    for (auto it = v.begin(); it != v.end(); ++it) {
      const JsonPath kp = extend(p, it.key());
      if (it.key() == "hosts") {
        hosts(name, it.value(), kp);
      } else if (it.key() == "vars") {
        merge_vars(it.value(), kp, groups_[name].vars);
      } else if (it.key() == "children") {
        if (it.value().is_null()) continue;
        if (!it.value().is_object()) {
          error(kp, "children of group '" + name + "' must be a map of groups");
          continue;
        }
        for (auto c = it.value().begin(); c != it.value().end(); ++c) {
          auto& kids = groups_[name].children;
          if (std::find(kids.begin(), kids.end(), c.key()) == kids.end()) kids.push_back(c.key());
          group(c.key(), c.value(), extend(kp, c.key()), depth + 1);
        }
      } else {
        error(kp, "unknown key '" + it.key() + "' in group '" + name + "': a group has hosts, vars and children", true);
      }
    }
  }

  void hosts(const std::string& group_name, const Json& v, const JsonPath& p) {
    if (v.is_null()) return;
    if (!v.is_object()) return error(p, "hosts of group '" + group_name + "' must be a map of host names");
    for (auto it = v.begin(); it != v.end(); ++it) {
      const JsonPath hp = extend(p, it.key());
      std::string problem;
      const std::vector<std::string> names = expand_host_pattern(it.key(), problem);
      if (!problem.empty()) {
        error(hp, problem, true);
        continue;
      }
      for (const std::string& h : names) {
        if (!host_marks_.count(h)) {
          host_marks_[h] = key_mark_of(doc_, marks_, hp);
          host_order_.push_back(h);
        }
        auto& list = groups_[group_name].hosts;
        if (std::find(list.begin(), list.end(), h) == list.end()) list.push_back(h);
        merge_vars(it.value(), hp, host_vars_[h]);
      }
    }
  }

  /// Every host under `name`, its children's included, in order; `seen` guards a cycle.
  void members(const std::string& name, std::vector<std::string>& out, std::set<std::string>& in_out,
               std::set<std::string>& seen) {
    if (!seen.insert(name).second) return;
    const GroupDef& g = groups_[name];
    for (const std::string& h : g.hosts)
      if (in_out.insert(h).second) out.push_back(h);
    for (const std::string& c : g.children) members(c, out, in_out, seen);
  }

  Inventory build() {
    Inventory inv;
    std::map<std::string, std::vector<std::string>> groups_of;  // host -> groups holding it
    for (const std::string& name : order_) {
      HostGroup hg;
      hg.name = name;
      hg.mark = groups_[name].mark;
      hg.inventory = path_;
      std::set<std::string> in, seen;
      if (name == "all") {
        hg.hosts = host_order_;
      } else {
        members(name, hg.hosts, in, seen);
      }
      for (const std::string& h : hg.hosts) groups_of[h].push_back(name);
      inv.groups.push_back(std::move(hg));
    }
    if (!groups_.count("all")) {  // Ansible's implicit group of every host
      HostGroup all{"all", host_order_, {}, path_};
      inv.groups.push_back(std::move(all));
    }
    for (const std::string& h : host_order_) inv.hosts.push_back(host(h, groups_of[h]));
    return inv;
  }

  /// The host's variables, the shallower group's first (`all` first), then the host's own.
  Vars effective_vars(const std::string& name, std::vector<std::string> groups) {
    std::sort(groups.begin(), groups.end(), [&](const std::string& a, const std::string& b) {
      const int da = a == "all" ? -1 : depth_[a], db = b == "all" ? -1 : depth_[b];
      return da != db ? da < db : a < b;
    });
    Vars vars;
    for (const std::string& g : groups)
      for (const auto& [k, v] : groups_[g].vars) vars[k] = v;
    for (const auto& [k, v] : host_vars_[name]) vars[k] = v;
    return vars;
  }

  Host host(const std::string& name, const std::vector<std::string>& groups) {
    const Vars vars = effective_vars(name, groups);
    Host h;
    h.name = name;
    h.inventory = path_;
    h.mark = host_marks_[name];
    if (auto c = vars.find("ansible_connection"); c != vars.end() && c->second.value == "local") return h;
    h.local = false;
    std::map<std::string, Mark> where;  // ssh parameter -> the variable setting it
    auto set = [&](const std::string& param, const Var& v) {
      Json value = v.value;
      // YAML reads `ansible_port: "2222"` as text; Ansible takes it as the number it means.
      if (param == "port" && value.is_string()) {
        const std::string& text = value.get_ref<const std::string&>();
        if (!text.empty() && text.size() < 6 && std::all_of(text.begin(), text.end(), ::isdigit))
          value = std::stoi(text);
      }
      h.ssh[param] = value;
      where[param] = v.mark;
    };
    h.ssh["address"] = name;
    where["address"] = h.mark;
    static const std::map<std::string, std::string> ansible = {
        {"ansible_host", "address"},
        {"ansible_ssh_host", "address"},
        {"ansible_port", "port"},
        {"ansible_ssh_port", "port"},
        {"ansible_user", "user"},
        {"ansible_ssh_user", "user"},
        {"ansible_ssh_private_key_file", "identity"},
        {"ansible_private_key_file", "identity"},
    };
    for (const auto& [var, v] : vars) {
      if (auto a = ansible.find(var); a != ansible.end()) set(a->second, v);
      if (var.rfind("plan_ssh_", 0) == 0 && var.size() > 9) set(var.substr(9), v);
    }
    h.ssh_marks = where;
    // The plan's own hosts' ssh parameters are checked by the schema: these are too, at the
    // variable that set each one.
    std::vector<Diagnostic> found;
    SchemaChecker::instance().validate(
        h.ssh, "ssh",
        [&](const JsonPath& p, bool) {
          auto w = p.empty() ? where.end() : where.find(p[0]);
          return w != where.end() ? w->second : h.mark;
        },
        {}, found);
    for (Diagnostic& d : found) diags_.push_back({d.mark, "host '" + name + "': " + d.message});
    return h;
  }

  const std::string& path_;
  const Json& doc_;
  const MarkNode& marks_;
  std::vector<Diagnostic>& diags_;
  std::map<std::string, GroupDef> groups_;
  std::vector<std::string> order_;  // groups in the order first met
  std::map<std::string, int> depth_;
  std::map<std::string, Vars> host_vars_;
  std::map<std::string, Mark> host_marks_;
  std::vector<std::string> host_order_;
};

/// The values of one range "a:b" or "a:b:stride" (numbers keep the start's zero padding).
bool expand_range(const std::string& spec, std::vector<std::string>& out, std::string& error) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t colon; (colon = spec.find(':', start)) != std::string::npos; start = colon + 1)
    parts.push_back(spec.substr(start, colon - start));
  parts.push_back(spec.substr(start));
  if (parts.size() < 2 || parts.size() > 3) return (error = "a range is [START:END] or [START:END:STEP]"), false;
  auto digits = [](const std::string& s) {
    return !s.empty() && s.size() < 9 && std::all_of(s.begin(), s.end(), ::isdigit);
  };
  long step = 1;
  if (parts.size() == 3) {
    if (!digits(parts[2]) || std::stol(parts[2]) == 0)
      return (error = "a range's step must be a positive number"), false;
    step = std::stol(parts[2]);
  }
  if (digits(parts[0]) && digits(parts[1])) {
    const long a = std::stol(parts[0]), b = std::stol(parts[1]);
    if (a > b) return (error = "a range's start is after its end"), false;
    if ((b - a) / step >= 100000) return (error = "a range of more than 100000 hosts"), false;
    const size_t width = parts[0].size();
    for (long i = a; i <= b; i += step) {
      std::string n = std::to_string(i);
      if (n.size() < width) n.insert(0, width - n.size(), '0');
      out.push_back(n);
    }
    return true;
  }
  auto letter = [](const std::string& s) { return s.size() == 1 && std::isalpha(static_cast<unsigned char>(s[0])); };
  if (letter(parts[0]) && letter(parts[1]) && parts[0][0] <= parts[1][0]) {
    for (int c = parts[0][0]; c <= parts[1][0]; c += static_cast<int>(step)) out.emplace_back(1, static_cast<char>(c));
    return true;
  }
  error = "a range is numbers ([01:50]) or letters ([a:f]), start before end";
  return false;
}

}  // namespace

std::vector<std::string> expand_host_pattern(const std::string& pattern, std::string& error) {
  const size_t open = pattern.find('[');
  if (open == std::string::npos) return {pattern};
  const size_t close = pattern.find(']', open);
  if (close == std::string::npos) {
    error = "unclosed '[' in host pattern '" + pattern + "'";
    return {};
  }
  std::vector<std::string> values;
  if (!expand_range(pattern.substr(open + 1, close - open - 1), values, error)) {
    error = "bad range in host pattern '" + pattern + "': " + error;
    return {};
  }
  const std::vector<std::string> tails = expand_host_pattern(pattern.substr(close + 1), error);
  std::vector<std::string> out;
  for (const std::string& v : values)
    for (const std::string& t : tails) {
      out.push_back(pattern.substr(0, open) + v + t);
      if (out.size() > 100000) {
        error = "host pattern '" + pattern + "' names more than 100000 hosts";
        return {};
      }
    }
  return out;
}

Inventory read_inventory(const std::string& path, const Json& doc, const MarkNode& marks,
                         std::vector<Diagnostic>& diags) {
  return Reader(path, doc, marks, diags).read();
}

}  // namespace plan
