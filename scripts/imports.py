#!/usr/bin/env python3
"""The module import graph of each library crate, and its circles.

For every crate of the workspace, each source file is a module (`a/b.rs` and
`a/b/mod.rs` are `a::b`); an arrow runs from a module to every module of the same crate
it names (`crate::x`, `super::x`, `self::x`), folded to the top-level module (`a`), and
to the crate root when it names an item the root itself defines. Prints each crate's
arrows with --verbose, and every circle (a strongly connected set of more than one
module); exits 1 when there is one. Test modules (`#[cfg(test)]` blocks, tests.rs) are
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
    src = os.path.join(ROOT, crate, "src")
    mods = modules(src)
    tops = {m[0] for m in mods if m}
    edges = set()
    for mod, path in mods.items():
        text = strip_tests(open(path).read())
        here = mod[0] if mod else "<root>"
        for m in re.finditer(r"\b(crate|super|self)::(\{[^}]*\}|[A-Za-z_][A-Za-z_0-9]*)", text):
            kind, name = m.group(1), m.group(2)
            names = [n.strip().split("::")[0] for n in name.strip("{}").split(",")] if name.startswith("{") else [name]
            for name in names:
                if kind == "crate":
                    target = name if name in tops else "<root>"
                elif kind == "super":
                    parent = mod[:-1]
                    target = parent[0] if parent else (name if name in tops else "<root>")
                else:
                    target = here
                if target != here:
                    edges.add((here, target))
    # The root declares every top-level module: it reaches them all.
    return tops | {"<root>"}, edges


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
        # Arrows to the root are the root's items used by a module; the root holds the
        # module declarations, which are no import.
        found_here = circles(nodes, {(a, b) for a, b in edges})
        if verbose:
            print(f"{crate}: {len(nodes)} modules, {len(edges)} arrows")
            for a, b in sorted(edges):
                print(f"  {a} -> {b}")
        for circle in found_here:
            found = True
            print(f"{crate}: circle: {' <-> '.join(circle)}")
    if not found:
        print("no import circles")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
