#!/usr/bin/env python3
"""Checks the crate's structure (run by CI; see docs/src/contributing.md).

1. No cycle between the top-level modules of `src/`: module A imports B when a non-test
   line of a file under A names `crate::B` (or `crate::{B, ..}`), or an item the crate root
   re-exports from B (`crate::Config`). `lib.rs` and `main.rs`
   are the crate root and the binary: they may name everything.
2. A platform's name appears in code (not comments, not tests) only in its provider file,
   its registration in `src/providers/mod.rs`, and the original engine's compatibility
   mapping (`src/config/compat/`).
3. No source file holds more than 800 lines of non-test code unless its module doc says
   why, on a line starting with `//! Size:`.

Prints the modules from the bottom layer up, then every failure; exits 1 on a failure.
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "src")
MAX_LINES = 800
# Platform name -> the files (relative to src/) where code may say it.
PLATFORMS = {
    "scalingo": ["providers/scalingo.rs"],
    "heroku": ["providers/heroku.rs"],
    "clever": ["providers/clever_cloud.rs"],
    # "render" is also an ordinary verb here (cli/render.rs, the dashboard): its names only.
    r"\bRender(Config|Provider|Service)\b|render\.com|onrender": ["providers/render.rs"],
    "fly": ["providers/fly.rs"],
    "kubernetes": ["providers/kubernetes"],
    "docker": ["providers/docker"],
}
# The registration, the original engine's mapping, and the fuzz entry points (test code).
ALWAYS_ALLOWED = ["providers/mod.rs", "config/compat", "fuzzing.rs"]


def code_lines(text):
    """The file's lines before its test module, without comments and string-free of
    `//` tails; a `#[cfg(test)]` item ends what is counted."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#[cfg(test)]"):
            break
        if stripped.startswith("//"):
            lines.append("")
            continue
        # Drop a trailing comment (good enough: `//` inside a string is rare in imports).
        if " // " in line:
            line = line[: line.index(" // ")]
        lines.append(line)
    return lines


def top_module(rel):
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def main():
    files = {}
    for dirpath, _, names in os.walk(SRC):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(dirpath, name)
                files[os.path.relpath(path, SRC)] = open(path, encoding="utf-8").read()
    modules = sorted({top_module(rel) for rel in files} - {"lib", "main"})
    # Items the crate root re-exports (`pub use config::Config;`): naming `crate::Config`
    # imports `config` all the same.
    reexported = {}
    for source, names in re.findall(r"pub use ([a-z_]+)::(\{[^}]*\}|[A-Za-z_]+);", files["lib.rs"]):
        for name in re.findall(r"[A-Za-z_]+", names):
            reexported[name] = source
    edges = {m: {} for m in modules}
    failures = []
    for rel, text in sorted(files.items()):
        module = top_module(rel)
        code = code_lines(text)
        if module not in ("lib", "main"):
            joined = "\n".join(code)
            names = set(re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", joined))
            for group in re.findall(r"\bcrate::\{([^}]*)\}", joined):
                names.update(re.findall(r"\b([a-z_][a-z0-9_]*)\b", group))
            for name in re.findall(r"\bcrate::([A-Z][A-Za-z0-9_]*)", joined):
                names.add(reexported.get(name, ""))
            for group in re.findall(r"\bcrate::\{([^}]*)\}", joined):
                for name in re.findall(r"\b([A-Z][A-Za-z0-9_]*)\b", group):
                    names.add(reexported.get(name, ""))
            for name in names:
                if name in edges and name != module:
                    edges[module].setdefault(name, rel)
        # Platform names.
        for platform, own in PLATFORMS.items():
            allowed = own + ALWAYS_ALLOWED
            if any(rel in (a, a + ".rs") or rel.startswith(a + os.sep) for a in allowed):
                continue
            for number, line in enumerate(code, 1):
                if re.search(platform, line, re.IGNORECASE):
                    failures.append(
                        f"src/{rel}:{number}: names the platform `{platform}` outside its "
                        f"provider file: {line.strip()}"
                    )
        # Size.
        counted = sum(1 for line in code if line.strip())
        if counted > MAX_LINES and "//! Size:" not in text:
            failures.append(
                f"src/{rel}: {counted} lines of non-test code (more than {MAX_LINES}): split "
                "it, or say why not on a `//! Size:` line of its module doc"
            )

    # Strongly connected components (Tarjan).
    index, low, stack, on_stack, sccs = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            sccs.append(component)

    sys.setrecursionlimit(10000)
    for module in modules:
        if module not in index:
            visit(module)
    for component in sccs:
        if len(component) > 1:
            members = set(component)
            ties = [
                f"    {a} -> {b} (src/{edges[a][b]})"
                for a in sorted(members)
                for b in sorted(edges[a])
                if b in members
            ]
            failures.append(
                "module cycle: " + ", ".join(sorted(component)) + "\n" + "\n".join(ties)
            )

    # Layers: a module's layer is one more than the highest layer it imports.
    layer = {}

    def depth(node, seen=()):
        if node in layer:
            return layer[node]
        if node in seen:
            return 0
        value = 1 + max((depth(n, seen + (node,)) for n in edges[node]), default=-1)
        layer[node] = value
        return value

    for module in modules:
        depth(module)
    for level in range(max(layer.values(), default=0) + 1):
        names = sorted(m for m in modules if layer[m] == level)
        if names:
            print(f"layer {level}: " + ", ".join(names))
    for failure in failures:
        print("FAIL " + failure)
    if failures:
        sys.exit(1)
    print("layers: no cycle, platforms in their files, no oversized file")


if __name__ == "__main__":
    main()
