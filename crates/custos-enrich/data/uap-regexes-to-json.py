#!/usr/bin/env python3
"""Convert uap-core's regexes.yaml into the JSON that custos-enrich embeds.

Usage: uap-regexes-to-json.py REGEXES_YAML OUTPUT_JSON

Needs PyYAML. JSON rather than YAML so that the crate parses its rules with
serde_json, which the workspace already has, instead of pulling in a YAML
parser. One rule per line keeps updates reviewable as diffs.
"""

import json
import sys

import yaml

SECTIONS = ("user_agent_parsers", "os_parsers", "device_parsers")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: uap-regexes-to-json.py REGEXES_YAML OUTPUT_JSON")
    with open(sys.argv[1], encoding="utf-8") as source:
        rules = yaml.safe_load(source)
    missing = [name for name in SECTIONS if not rules.get(name)]
    if missing:
        sys.exit(f"uap-regexes-to-json: {sys.argv[1]}: no {', '.join(missing)}")
    lines = ["{"]
    for index, name in enumerate(SECTIONS):
        lines.append(f"{json.dumps(name)}: [")
        entries = [json.dumps(rule, ensure_ascii=False, sort_keys=True) for rule in rules[name]]
        lines.append(",\n".join(entries))
        lines.append("]," if index + 1 < len(SECTIONS) else "]")
    lines.append("}")
    with open(sys.argv[2], "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
