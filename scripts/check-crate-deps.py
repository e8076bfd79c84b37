#!/usr/bin/env python3
"""Checks the workspace's crate graph against the rules in ARCHITECTURE.md.

The rules are the fenced block tagged `crate-deps` in ARCHITECTURE.md, so the
document and the check cannot drift apart. Two kinds of line:

    custos-runtime   custos-core custos-store   dev: custos-sim
        the workspace crates a crate may depend on (normal and build
        dependencies), and after `dev:` the extra ones its tests may use;
        `-` for none. Every workspace crate must have such a line.

    forbid custos-core custos-sim : tokio axum
        none of these external crates may be in the crates' normal dependency
        tree, directly or through anything else.

Reads `cargo metadata`; exits 1 and names every breach.
"""

import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def read_rules():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    match = re.search(r"```text crate-deps\n(.*?)```", text, re.S)
    if not match:
        sys.exit("ARCHITECTURE.md: no ```text crate-deps block")
    allowed, dev_allowed, forbidden = {}, {}, []
    for number, raw in enumerate(match.group(1).splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] == "forbid":
            if ":" not in words:
                sys.exit(f"crate-deps line {number}: forbid needs ' : '")
            cut = words.index(":")
            forbidden.append((words[1:cut], words[cut + 1 :]))
            continue
        crate, rest = words[0], words[1:]
        normal, dev = rest, []
        if "dev:" in rest:
            cut = rest.index("dev:")
            normal, dev = rest[:cut], rest[cut + 1 :]
        allowed[crate] = {w for w in normal if w != "-"}
        dev_allowed[crate] = set(dev)
    return allowed, dev_allowed, forbidden


def main():
    allowed, dev_allowed, forbidden = read_rules()
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    names = {p["id"]: p["name"] for p in metadata["packages"]}
    members = {names[i] for i in metadata["workspace_members"]}
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    problems = []

    for crate in sorted(members - allowed.keys()):
        problems.append(f"{crate}: not listed in ARCHITECTURE.md's crate-deps block")
    for crate in sorted(allowed.keys() - members):
        problems.append(f"{crate}: listed in crate-deps but not a workspace crate")

    def normal_deps(node_id):
        for dep in nodes[node_id]["deps"]:
            if any(k["kind"] in (None, "build") for k in dep["dep_kinds"]):
                yield dep["pkg"]

    for member_id in metadata["workspace_members"]:
        crate = names[member_id]
        if crate not in allowed:
            continue
        for dep in nodes[member_id]["deps"]:
            name = names[dep["pkg"]]
            if name not in members:
                continue
            kinds = {k["kind"] for k in dep["dep_kinds"]}
            if kinds & {None, "build"} and name not in allowed[crate]:
                problems.append(f"{crate} depends on {name}, which it may not")
            elif kinds == {"dev"} and name not in allowed[crate] | dev_allowed[crate]:
                problems.append(f"{crate}'s tests depend on {name}, which they may not")

    ids = {names[i]: i for i in metadata["workspace_members"]}
    for crates, externals in forbidden:
        for crate in crates:
            if crate not in ids:
                problems.append(f"forbid: {crate} is not a workspace crate")
                continue
            # Walk the normal dependency tree, remembering one path to each crate.
            paths = {ids[crate]: [crate]}
            todo = [ids[crate]]
            while todo:
                current = todo.pop()
                for dep in normal_deps(current):
                    if dep not in paths:
                        paths[dep] = paths[current] + [names[dep]]
                        todo.append(dep)
            for dep, path in sorted(paths.items(), key=lambda p: p[1]):
                if names[dep] in externals:
                    problems.append(f"{crate} must not link {names[dep]}: {' -> '.join(path)}")

    if problems:
        print("crate dependency rules (ARCHITECTURE.md) broken:")
        for problem in problems:
            print(f"- {problem}")
        sys.exit(1)
    print(f"crate dependencies follow ARCHITECTURE.md ({len(members)} crates)")


if __name__ == "__main__":
    main()
