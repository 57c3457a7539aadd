"""Malformed sweep files, generated: each is valid or rejected with a message naming the key, never a traceback.

Hypothesis mutates the shipped sweep files (a value anywhere replaced by one of
another type, a huge or non-finite number, a unicode string, an unknown key,
a key removed) and writes raw text (broken YAML, empty files). Whatever it
makes, ``load_sweep`` returns a config, whose plan ``--dry-run`` can print,
or raises ``SweepFileError`` whose lines name a key path.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicvae.cli import describe_plan
from musicvae.config.sweep_file import SweepFileError, load_sweep

REPO = Path(__file__).resolve().parents[1]
SHIPPED = [yaml.safe_load(path.read_text()) for path in sorted((REPO / "sweeps").glob("*.yaml"))]
KEYED_LINE = re.compile(r"^  \S.*: .+", re.S)  # '  space.model: value 'svm' is invalid ...'

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["vae", "kmeans", "silhouette", "grid", "tpe", "asha", "table", "synth", "", "é漢🎵", "-1", "1e400"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=8)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into a parsed YAML document (dict keys and list indices)."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += paths(value, (*prefix, i))
    return found


def mutated(document: dict, path: tuple, action: str, value: Any) -> Any:
    copy = yaml.safe_load(yaml.safe_dump(document))
    *parents, last = path
    node = copy
    for part in parents:
        node = node[part]
    if action == "replace":
        node[last] = value
    elif action == "remove" and isinstance(node, dict):
        del node[last]
    elif action == "add" and isinstance(node, dict):
        node[f"{last}_unknown"] = value
    return copy


@st.composite
def sweep_texts(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["mutate", "mutate", "mutate", "mutate", "raw_yaml", "top_level"]))
    if kind == "raw_yaml":
        return draw(
            st.one_of(
                st.text(max_size=60),
                st.sampled_from(["", "   \n", "name: [unclosed", "name: x\n  bad: indent\n:", "\t- tab", "{{{", "--- !!python/object:os.system {}"]),
            )
        )
    if kind == "top_level":
        return yaml.safe_dump(draw(values))
    document = draw(st.sampled_from(SHIPPED))
    path = draw(st.sampled_from(paths(document)))
    action = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
    return yaml.safe_dump(mutated(document, path, action, draw(values)), allow_unicode=True)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(sweep_texts())
def test_a_malformed_sweep_file_is_valid_or_rejected_by_key(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzzed.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            cfg = load_sweep(path)
        except SweepFileError as exc:
            message = str(exc)
            assert message.startswith(str(path)), message
            lines = message.splitlines()
            if "is not a valid sweep file" in lines[0]:
                assert len(lines) > 1 and all(KEYED_LINE.match(line) for line in lines[1:]), message
            return
    describe_plan(cfg)  # what --dry-run prints: the valid file must be usable as a plan
    assert cfg.num_samples >= 1
