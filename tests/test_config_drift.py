"""flow.yml, the code's signatures, `app.py --help` and README's tables say the same things.

flow.yml overrides defaults that live in the code; these tests fail when a key there is one no
executor takes, when the readers stop sharing one read policy, or when the command line's help
or README's tables quote a flow.yml value that flow.yml no longer has.
"""

import inspect
import re
from pathlib import Path

import pytest
import yaml

from audiosearch.paths import READ_POLICY_KEYS
from cli import main as app
from executors.encoder import AudioEncoder
from executors.http_guard import GuardSettings
from executors.indexer import SimpleIndexer
from executors.ranker import Ranker
from executors.segmenter import AudioSegmenter

ROOT = Path(__file__).resolve().parent.parent
FLOW = yaml.safe_load((ROOT / "flow.yml").read_text())
EXECUTORS = {e["name"]: e for e in FLOW["executors"]}
CLASSES = {"segmenter": AudioSegmenter, "encoder": AudioEncoder, "indexer": SimpleIndexer,
           "ranker": Ranker}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_flow_yml_setting_is_an_argument_of_its_executor(name):
    executor = EXECUTORS[name]
    assert executor["uses"] == CLASSES[name].__name__
    taken = set(inspect.signature(CLASSES[name].__init__).parameters) - {"self", "kwargs"}
    assert set(executor.get("uses_with", {})) <= taken, taken


def test_the_gateway_settings_are_the_guards_and_the_read_policy():
    taken = {"api_key", "max_body_mb", "max_file_mb", "max_docs", "read_policy"}
    assert set(FLOW["gateway"]["uses_with"]) == taken
    defaults = GuardSettings()
    assert FLOW["gateway"]["uses_with"]["max_docs"] == defaults.max_docs
    assert FLOW["gateway"]["uses_with"]["max_body_mb"] * 2**20 == defaults.max_body_bytes
    assert FLOW["gateway"]["uses_with"]["max_file_mb"] * 2**20 == defaults.max_file_bytes


def test_every_reader_of_files_gets_the_one_read_policy():
    policy = FLOW["gateway"]["uses_with"]["read_policy"]
    assert tuple(policy) == READ_POLICY_KEYS
    for name in ("segmenter", "encoder", "ranker"):
        assert EXECUTORS[name]["uses_with"]["read_policy"] is policy, name  # a YAML alias


def help_texts() -> dict[str, str]:
    """Each option's help, over every app.py command."""
    commands = app.parser()._subparsers._group_actions[0].choices
    return {
        option: action.help or ""
        for sub in commands.values()
        for action in sub._actions
        for option in action.option_strings
    }


def flow_value(path: str):
    """The flow.yml value at ``with.port``, ``encoder.uses_with.encoder``, ..."""
    head, *rest = path.split(".")
    node = FLOW["with"] if head == "with" else EXECUTORS[head]
    for key in rest:
        node = node[key]
    return node


@pytest.mark.parametrize(
    ("option", "path"),
    [("--port", "with.port"), ("--host", "with.host"), ("--workspace", "indexer.workspace"),
     ("--encoder", "encoder.uses_with.encoder"), ("--models-dir", "encoder.uses_with.models_dir"),
     ("--max-seconds", "segmenter.uses_with.read_policy.max_seconds"),
     ("--shards", "indexer.shards"), ("--dtype", "indexer.uses_with.dtype")],
)  # fmt: skip
def test_app_help_quotes_flow_yml_as_it_is(option, path):
    quoted = re.search(r"flow\.yml: ([^;)]+)", help_texts()[option])
    assert quoted, help_texts()[option]
    assert quoted.group(1).strip().rstrip("/") == str(flow_value(path)).rstrip("/")


def test_readme_settings_table_quotes_flow_yml_as_it_is():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## Docker")]
    rows = re.findall(r"\| `([\w.]+)` \(`?([^`;)]+)`?[;)]", table)
    assert len(rows) >= 8
    for path, quoted in rows:
        value = flow_value(path)
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        assert quoted.split(" = ")[0].strip().rstrip("/") == shown.rstrip("/"), path
