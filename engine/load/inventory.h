#pragma once
// Ansible's YAML inventory (`--inventory FILE`), read into hosts and groups of hosts so that an
// operator's existing inventory works unchanged: groups at the top level (usually `all`), each
// with `hosts`, `vars` and `children`; host patterns with ranges (`web[01:50].example.com`);
// variables inherited from parent groups to children to hosts, the deeper one winning.

#include <string>
#include <vector>

#include "plan/diagnostic.h"
#include "plan/model.h"
#include "plan/yaml_json.h"

namespace plan {

struct Inventory {
  std::vector<Host> hosts;        // in file order; `inventory` names the file
  std::vector<HostGroup> groups;  // every group (all included) with each host under it, in file order
};

/// Reads a parsed inventory document. The connection comes from Ansible's variables:
/// ansible_host (the address; default the host's name), ansible_port, ansible_user,
/// ansible_ssh_private_key_file (or ansible_private_key_file); ansible_connection: local makes a
/// local host. `plan_ssh_NAME` sets any other ssh parameter of a plan host (plan_ssh_known_hosts,
/// plan_ssh_connect_timeout). Other variables are Ansible's or the playbooks' and are left alone.
/// Problems are Diagnostics at their position in the inventory file.
Inventory read_inventory(const std::string& path, const Json& doc, const MarkNode& marks,
                         std::vector<Diagnostic>& diags);

/// Expands an Ansible host pattern's ranges: "web[01:03]" -> web01, web02, web03; "[a:c]x" ->
/// ax, bx, cx; "[1:9:4]" -> 1, 5, 9. Sets `error` on a malformed range.
std::vector<std::string> expand_host_pattern(const std::string& pattern, std::string& error);

}  // namespace plan
