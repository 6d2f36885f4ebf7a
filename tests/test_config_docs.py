"""One config: the schema (edge/daemon/config.py) is the only source of defaults; the example file
and the reference in docs/CONFIGURATION.md must say the same, key by key."""
import json
import os
import re

import pytest

from edge.daemon.config import CAMERA_SCHEMA, SCHEMA, config_from_dict
from tests.support import REPO

EXAMPLE = os.path.join(REPO, "examples", "faceedge.toml")
REFERENCE = os.path.join(REPO, "docs", "CONFIGURATION.md")
COMPUTED = {("device", "id")}     # defaults derived at start (the host name), documented in words
SECTIONS = sorted(SCHEMA) + ["cameras"]


def schema(section):
    return CAMERA_SCHEMA if section == "cameras" else SCHEMA[section]


def toml_value(text):
    """A TOML scalar or list as written in the example (the subset it uses)."""
    text = text.split(" #", 1)[0].strip()
    if text in ("true", "false"):
        return text == "true"
    return json.loads(text)


def same(a, b):
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, (str, list)) or isinstance(b, (str, list)):
        return a == b
    return abs(float(a) - float(b)) < 1e-12


def example_tables():
    """section -> {key: value}, from active lines and from commented-out `# key = value` lines."""
    tables, section = {}, None
    with open(EXAMPLE) as f:
        for line in f:
            header = re.match(r"^#?\s*\[\[?(\w+)\]\]?\s*$", line.strip())
            if header:
                section = header.group(1)
                tables.setdefault(section, {})
                continue
            entry = re.match(r"^#?\s*(\w+)\s*=\s*(.+)$", line.strip())
            if entry and section is not None and entry.group(1) not in tables[section]:
                try:
                    tables[section][entry.group(1)] = toml_value(entry.group(2))
                except ValueError:
                    tables[section][entry.group(1)] = entry.group(2)    # an example value, not JSON
    return tables


def test_the_example_file_is_a_valid_config_that_changes_no_default():
    from edge.daemon.config import load_config
    config = load_config(EXAMPLE)
    assert config == config_from_dict({}, EXAMPLE)._replace(source=config.source, device_id=config.device_id)


@pytest.mark.parametrize("section", SECTIONS)
def test_the_example_shows_every_option_with_the_schema_default(section):
    shown = example_tables().get(section, {})
    for key, _, default, _ in schema(section):
        assert key in shown, "examples/faceedge.toml: [{}] {} is missing".format(section, key)
        if default is not None and (section, key) not in COMPUTED:
            assert same(shown[key], default), "examples/faceedge.toml: [{}] {} = {!r}, schema default {!r}".format(
                section, key, shown[key], default)
    unknown = set(shown) - set(k for k, _, _, _ in schema(section))
    assert not unknown, "examples/faceedge.toml: [{}] has keys the schema does not know: {}".format(section, unknown)


def reference_rows():
    """section -> {key: first backticked value of the default column (or its text)}."""
    rows, section = {}, None
    with open(REFERENCE) as f:
        for line in f:
            header = re.match(r"^## `\[\[?(\w+)\]\]?`", line)
            if header:
                section = header.group(1)
                rows[section] = {}
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("| `") else None
            if section is None or not cells or len(cells) < 3:
                continue
            keys = re.findall(r"`(\w+)`", cells[0])
            defaults = re.findall(r"`([^`]*)`", cells[1]) if cells[1].startswith("`") else []
            for i, key in enumerate(keys):      # "`host`, `port` | `"localhost"`, `1883`": one each
                rows[section][key] = (defaults[i] if len(defaults) >= len(keys) else defaults[0]) if defaults \
                    else cells[1]
    return rows


@pytest.mark.parametrize("section", SECTIONS)
def test_the_reference_documents_every_option_with_the_schema_default(section):
    documented = reference_rows().get(section)
    assert documented is not None, "docs/CONFIGURATION.md has no section for [{}]".format(section)
    for key, _, default, _ in schema(section):
        assert key in documented, "docs/CONFIGURATION.md: [{}] {} is not documented".format(section, key)
        if default is None:
            assert documented[key] == "required", (section, key, documented[key])
        elif (section, key) not in COMPUTED:
            assert same(toml_value(documented[key]), default), "docs/CONFIGURATION.md: [{}] {} says {}, schema {!r}".format(
                section, key, documented[key], default)
    unknown = set(documented) - set(k for k, _, _, _ in schema(section))
    assert not unknown, "docs/CONFIGURATION.md: [{}] documents keys the schema does not know: {}".format(section, unknown)
