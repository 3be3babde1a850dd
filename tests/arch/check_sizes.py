#!/usr/bin/env python3
"""Fails when a source file is over 700 lines or a function over 120.

Files: every .h and .cpp under engine/, steps/, cli/, tests/ and bench/ (generated code lives in
the build folder, never here). Functions: what universal-ctags calls a function (its end line
gives the length; a lambda counts toward the function around it), and every Catch2 TEST_CASE
body, which ctags cannot see through the macro.

Usage: check_sizes.py ROOT. Prints each offender as FILE:LINE: ... and exits 1.
"""
import os
import re
import subprocess
import sys

MAX_FILE_LINES = 700
MAX_FUNCTION_LINES = 120
FOLDERS = ["engine", "steps", "cli", "tests", "bench"]
TEST_CASE = re.compile(r"^\s*(TEST_CASE|TEMPLATE_TEST_CASE|SCENARIO)\s*\(")


def sources(root):
    for folder in FOLDERS:
        for dirpath, _, names in os.walk(os.path.join(root, folder)):
            for n in sorted(names):
                if n.endswith((".h", ".cpp")):
                    yield os.path.join(dirpath, n)


def body_end(text, start):
    """Index just past the brace that closes the first '{' at or after start, skipping comments,
    string and character literals (raw strings too)."""
    i, depth, n = start, 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            i = text.find("\n", i)
            if i < 0:
                return n
            continue
        if text.startswith("/*", i):
            i = text.find("*/", i + 2) + 2
            continue
        raw = re.match(r'(?:u8|u|U|L)?R"([^()\\\s]{0,16})\(', text[i:i + 24])
        if raw and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            close = ")" + raw.group(1) + '"'
            i = text.find(close, i + raw.end()) + len(close)
            continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def test_case_lengths(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    for number, start in enumerate(line_starts, 1):
        line_end = text.find("\n", start)
        if not TEST_CASE.match(text[start:line_end if line_end >= 0 else len(text)]):
            continue
        end = body_end(text, text.find("{", start))
        yield number, text.count("\n", start, end) + 1


def ctags_functions(files):
    out = subprocess.run(["ctags", "--fields=+ne", "--c++-kinds=+f", "--languages=C++", "-o", "-"] + files,
                         check=True, capture_output=True, text=True).stdout
    for row in out.splitlines():
        cols = row.split("\t")
        fields = dict(c.split(":", 1) for c in cols[4:] if ":" in c)
        if len(cols) > 3 and cols[3] == "f" and "line" in fields and "end" in fields:
            yield cols[1], int(fields["line"]), cols[0], int(fields["end"]) - int(fields["line"]) + 1


def main(root):
    problems = []
    files = list(sources(root))
    for path in files:
        with open(path, encoding="utf-8") as f:
            lines = sum(1 for _ in f)
        if lines > MAX_FILE_LINES:
            problems.append(f"{path}:1: error: {lines} lines (at most {MAX_FILE_LINES}): split it by subject")
        if "/tests/" in "/" + os.path.relpath(path, root).replace(os.sep, "/"):
            for number, length in test_case_lengths(path):
                if length > MAX_FUNCTION_LINES:
                    problems.append(f"{path}:{number}: error: test case of {length} lines "
                                    f"(at most {MAX_FUNCTION_LINES})")
    for path, number, name, length in ctags_functions(files):
        if length > MAX_FUNCTION_LINES:
            problems.append(f"{path}:{number}: error: {name}() has {length} lines (at most {MAX_FUNCTION_LINES})")
    for p in sorted(set(problems)):
        print(p)
    if problems:
        print(f"{len(set(problems))} size problem(s)")
        return 1
    print(f"sizes: {len(files)} files, none over {MAX_FILE_LINES} lines, no function over {MAX_FUNCTION_LINES}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
