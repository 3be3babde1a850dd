#!/usr/bin/env python3
"""bench/run --gen writes one DAG three times: plan.yaml for plan, build.ninja for ninja and a
Makefile for GNU make. The benchmark compares the tools only if the three are the same graph;
this checks they are, for every shape: the same nodes, the same edges, every node built by
default, and each tool parses its file and would run every node once (`ninja -n`, `make -n`).
No timing.

Usage: gen_test.py [ROOT]. Prints what differs and exits 1.
"""
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
N = 50
SHAPES = ("chain", "wide", "layered")


def plan_graph(path):
    """(nodes, edges) of plan.yaml; edges are (needed, needing) pairs."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        import yaml
        steps = [(s["id"], s.get("needs", [])) for s in yaml.safe_load(text)["steps"]]
    except ImportError:  # the generated format, by hand: "  - id: sN" then "    needs: [a, b]"
        steps = []
        for line in text.splitlines():
            m = re.match(r"\s+- id: (\S+)$", line)
            if m:
                steps.append((m.group(1), []))
            m = re.match(r"\s+needs: \[(.*)\]$", line)
            if m:
                steps[-1][1].extend(x.strip() for x in m.group(1).split(",") if x.strip())
    return [s for s, _ in steps], {(d, s) for s, needs in steps for d in needs}


def ninja_graph(path):
    """(nodes, edges, defaults) of build.ninja: each `build OUT: RULE IN...` is a node."""
    nodes, edges, defaults = [], set(), None
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"build (\S+): (\S+)(.*)$", line.rstrip("\n"))
            if m:
                nodes.append(m.group(1))
                edges |= {(d, m.group(1)) for d in m.group(3).split()}
            elif line.startswith("default "):
                defaults = line.split()[1:]
    return nodes, edges, defaults


def make_graph(path):
    """(nodes, edges, goal prerequisites, recipes per node) of the Makefile. The default goal is
    its first target; special targets (.PHONY, .SUFFIXES) and variables are not nodes."""
    nodes, edges, goal, recipes, current = [], set(), None, {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("\t"):
                if current:
                    recipes[current] = recipes.get(current, 0) + 1
                continue
            current = None
            m = re.match(r"([^\s:#=+]+):(?!=)(.*)$", line)
            if not m or m.group(1).startswith("."):
                continue
            target, prereqs = m.group(1), m.group(2).split()
            if goal is None:
                goal = (target, prereqs)
                continue
            nodes.append(target)
            current = target
            edges |= {(d, target) for d in prereqs}
    return nodes, edges, goal, recipes


def compare(shape, plan, ninja, make):
    """What differs between the three graphs, as messages."""
    problems = []
    (p_nodes, p_edges), (n_nodes, n_edges, n_default), (m_nodes, m_edges, m_goal, m_recipes) = \
        plan, ninja, make
    expected = [f"s{i}" for i in range(N)]
    for name, nodes in (("plan.yaml", p_nodes), ("build.ninja", n_nodes), ("Makefile", m_nodes)):
        if sorted(nodes) != sorted(expected) or len(set(nodes)) != len(nodes):
            problems.append(f"{shape}: {name} has nodes {sorted(set(nodes) ^ set(expected))} "
                            f"wrong or repeated ({len(nodes)} nodes, expected {N})")
    for name, edges in (("build.ninja", n_edges), ("Makefile", m_edges)):
        if edges != p_edges:
            problems.append(f"{shape}: {name} edges differ from plan.yaml's: missing "
                            f"{sorted(p_edges - edges)[:5]}, extra {sorted(edges - p_edges)[:5]}")
    if shape != "wide" and not p_edges:
        problems.append(f"{shape}: no edges at all")
    if n_default is not None:
        problems.append(f"{shape}: build.ninja has a default statement; ninja must build every root")
    # make builds its first target: it must need every node nothing else needs (then all run).
    sinks = {s for s in expected if not any(d == s for d, _ in p_edges)}
    if not m_goal or m_goal[0] != "all" or set(m_goal[1]) != sinks:
        problems.append(f"{shape}: the Makefile's default goal is {m_goal and m_goal[0]!r} needing "
                        f"{sorted(set(m_goal[1]) ^ sinks) if m_goal else '?'} wrongly")
    if any(m_recipes.get(s) != 1 for s in expected):
        problems.append(f"{shape}: every Makefile target needs exactly one recipe line")
    return problems


def dry_run(argv, cwd, pattern):
    """How many lines of argv's output match pattern (commands it would run), or an error."""
    try:
        out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)
    except OSError as e:
        return None, f"{argv[0]}: {e} (scripts/install-deps installs it)"
    if out.returncode != 0:
        return None, f"{' '.join(argv)} failed: {out.stderr.strip()[:500]}"
    return sum(1 for line in out.stdout.splitlines() if re.match(pattern, line)), None


def main():
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in SHAPES:
            d = os.path.join(tmp, shape)
            subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run"), "--gen", d,
                            "--shape", shape, "-n", str(N)], check=True, stdout=subprocess.DEVNULL)
            plan = plan_graph(os.path.join(d, "plan.yaml"))
            ninja = ninja_graph(os.path.join(d, "build.ninja"))
            make = make_graph(os.path.join(d, "Makefile"))
            found = compare(shape, plan, ninja, make)
            problems += found
            # The comparison must see a dropped edge (else it checks nothing).
            if not found and plan[1]:
                dropped = (make[0], make[1] - {sorted(plan[1])[0]}, make[2], make[3])
                if not compare(shape, plan, ninja, dropped):
                    problems.append(f"{shape}: a Makefile missing an edge went unnoticed")
            for argv, pattern in ((["ninja", "-n"], r"\[\d+/\d+\] "), (["make", "-n"], r"true$")):
                count, error = dry_run(argv, d, pattern)
                if error:
                    problems.append(f"{shape}: {error}")
                elif count != N:
                    problems.append(f"{shape}: {' '.join(argv)} would run {count} commands, not {N}")
            print(f"{shape}: {N} nodes, {len(plan[1])} edges" + (" — differ" if found else ""))
    for p in problems:
        print("FAIL: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
