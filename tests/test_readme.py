"""The README says what the code does: its schema tables are protocol/schema.py's, and its
HAProxy configuration is the one the cluster test runs."""

from __future__ import annotations

import re
from pathlib import Path

from protocol.schema import TABLES, Field, Kind
from tests.e2e_cluster.conftest import CONFIG

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def _kind(f: Field) -> str:
    if f.kind is Kind.TEXT:
        return f"text({f.max_length})"
    if f.kind is Kind.DECIMAL:
        return f"decimal({f.scale})"
    return f.kind.value


def _default(f: Field) -> str:
    if f.default is None:
        return ""
    if isinstance(f.default, bool):
        return "`true`" if f.default else "`false`"
    return f"`{f.default}`" if f.default != "" else '`""`'


def test_the_readme_lists_every_table_and_field_with_its_kind_and_default():
    schema = _section("The schema")
    documented: dict[str, list[tuple[str, str, str]]] = {}
    for block in re.split(r"\n\*\*`", schema)[1:]:
        name = block.split("`", 1)[0]
        rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| ([^|]*) \|", block, flags=re.M)
        documented[name] = [(f, k.strip(), d.strip()) for f, k, d in rows]
    assert set(documented) == set(TABLES)
    for name, table in TABLES.items():
        assert documented[name] == [(f.name, _kind(f), _default(f)) for f in table.fields], name


def test_the_readme_shows_the_haproxy_configuration_the_cluster_test_runs():
    section = _section("Several server processes behind a load balancer")
    shown = section.split("```\n", 2)[1].split("```", 1)[0]
    expected = CONFIG.replace("bind 127.0.0.1:{port}", "bind :3001")
    before, after = expected.split("{servers}")
    assert shown.startswith(before) and shown.endswith(after)
    servers = shown[len(before) : len(shown) - len(after)].splitlines()
    assert servers and all(re.fullmatch(r"    server s\d 10\.0\.0\.\d+:3001", s) for s in servers)
