#!/usr/bin/env python3
"""The module import graph of each library crate, and its circles.

For every crate of the workspace, each source file is a module (`a/b.rs` and
`a/b/mod.rs` are `a::b`); an arrow runs from a module to every module of the same crate
it names (`crate::x::y`, `super::y`, `self::y`). Prints each crate's arrows with
--verbose, and every circle (a strongly connected set of more than one module); exits 1
when there is one. Test modules (`#[cfg(test)]` blocks, tests.rs) are
left out: a test may look anywhere.
"""
import os, re, sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CRATES = ["common", "source", "landing", "producer", "consumer", "mongo2pg", "e2e"]


def modules(src):
    out = {}
    for folder, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs") or folder.startswith(os.path.join(src, "bin")):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]):
                rel = []
            if rel and rel[-1] == "tests":
                continue
            out[tuple(rel)] = path
    return out


def strip_tests(text):
    """The code of a file without its test module and comments (a doc link is no import)."""
    i = text.find("#[cfg(test)]")
    text = text if i < 0 else text[:i]
    return "\n".join(re.sub(r"//.*$", "", line) for line in text.splitlines())


def arrows(crate):
    """Every module of the crate and the modules it names. A path is resolved to the
    longest module it starts with (`crate::follow::stream::now_ms` names
    `follow::stream`); the crate root (`lib.rs`, which declares every module and
    re-exports some) is left out."""
    src = os.path.join(ROOT, crate, "src")
    mods = modules(src)
    names = set(mods)
    edges = set()
    pattern = r"\b(crate|super|self)::((?:[A-Za-z_][A-Za-z_0-9]*::)*)(\{[^}]*\}|[A-Za-z_][A-Za-z_0-9]*)"
    for mod, path in mods.items():
        if not mod:
            continue
        text = strip_tests(open(path).read())
        for m in re.finditer(pattern, text):
            kind, middle, last = m.group(1), m.group(2), m.group(3)
            base = () if kind == "crate" else (mod[:-1] if kind == "super" else mod)
            prefix = list(base) + [s for s in middle.split("::") if s]
            items = last.strip("{}").split(",") if last.startswith("{") else [last]
            for item in items:
                wanted = tuple(prefix + [item.strip().split("::")[0]])
                for k in range(len(wanted), 0, -1):
                    if wanted[:k] in names:
                        if wanted[:k] != mod:
                            edges.add((mod, wanted[:k]))
                        break
    return {m for m in mods if m}, edges


def circles(nodes, edges):
    graph = {n: [b for a, b in edges if a == n] for n in nodes}
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                out.append(sorted(scc))

    for n in nodes:
        if n not in index:
            visit(n)
    return out


def main():
    verbose = "--verbose" in sys.argv
    found = False
    for crate in CRATES:
        nodes, edges = arrows(crate)
        found_here = circles(nodes, edges)
        if verbose:
            print(f"{crate}: {len(nodes)} modules, {len(edges)} arrows")
            for a, b in sorted(edges):
                print(f"  {'::'.join(a)} -> {'::'.join(b)}")
        for circle in found_here:
            found = True
            print(f"{crate}: circle: {' <-> '.join('::'.join(m) for m in circle)}")
    if not found:
        print("no import circles")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
