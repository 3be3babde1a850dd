#!/usr/bin/env python3
"""Fails when an engine layer includes a higher one (or one beside it), or steps/ reach above run.

The layers of engine/, lowest first (ARCHITECTURE.md says what each holds):
  util <- plan <- graph <- run <- ssh, load <- state, report <- app <- cli
Folders on the same line with a comma are beside each other: neither includes the other.
steps/ sits beside run: it may include util, plan, graph, run and ssh (the remote-host backend),
never load, state, report or app. Nothing in engine/ includes a file of steps/ or cli/.

Usage: check_layers.py ROOT. Prints every offending include as FILE:LINE: ... and exits 1.
"""
import os
import re
import sys

RANK = {"util": 0, "plan": 1, "graph": 2, "run": 3, "ssh": 4, "load": 4,
        "state": 5, "report": 5, "app": 6}
STEPS_MAY_INCLUDE = {"util", "plan", "graph", "run", "ssh"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def sources(folder):
    for dirpath, _, names in os.walk(folder):
        for n in sorted(names):
            if n.endswith((".h", ".cpp")):
                yield os.path.join(dirpath, n)


def includes(path):
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if m:
                yield number, m.group(1)


def main(root):
    problems = []
    engine = os.path.join(root, "engine")
    for path in sources(engine):
        layer = os.path.relpath(path, engine).split(os.sep)[0]
        if layer not in RANK:
            problems.append(f"{path}:1: error: engine/{layer}/ is not a known layer (add it to RANK and to ARCHITECTURE.md)")
            continue
        for number, inc in includes(path):
            target = inc.split("/")[0] if "/" in inc else layer
            if target not in RANK:
                if not os.path.exists(os.path.join(os.path.dirname(path), inc)):
                    problems.append(f"{path}:{number}: error: includes \"{inc}\", outside the engine's layers")
                continue
            if target != layer and RANK[target] >= RANK[layer]:
                where = "above" if RANK[target] > RANK[layer] else "beside"
                problems.append(f"{path}:{number}: error: {layer}/ includes \"{inc}\" from {target}/, "
                                f"a layer {where} it")
    for path in sources(os.path.join(root, "steps")):
        for number, inc in includes(path):
            target = inc.split("/")[0]
            if target in RANK and target not in STEPS_MAY_INCLUDE:
                problems.append(f"{path}:{number}: error: steps/ includes \"{inc}\" from {target}/; "
                                f"step types may use only {', '.join(sorted(STEPS_MAY_INCLUDE))}")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} include(s) break the layering")
        return 1
    print("layers: every include points down")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
