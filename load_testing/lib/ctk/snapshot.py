"""Routing snapshot files, as the router reads them: JSON, or YAML.

    DEMO                     conf/routing.yaml, the demo data
    load_snapshot(path)      the document (a dict of entity arrays): JSON directly; YAML
                             through conf/gen_routing.py's reader (PyYAML when installed,
                             else its line parser for the generator's own layout)
    snapshot_tool()          target/release/cti-kaltura-snapshot, if built
    tool_counts(tool, path)  what `cti-kaltura-snapshot check` says can route: routable
                             regions, eligible edges, live channels, catch-up programs
"""

import json
import re
import subprocess
import sys
from pathlib import Path

from . import REPO


DEMO = REPO / "conf" / "routing.yaml"


class SnapshotError(Exception):
    pass


def _yaml_reader():
    conf = str(REPO / "conf")
    if conf not in sys.path:
        sys.path.insert(0, conf)
    from gen_routing import load  # the generator's own reader

    return load


def load_snapshot(path):
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        doc = json.loads(text)
    else:
        try:
            doc, _how = _yaml_reader()(path)
        except (ValueError, KeyError) as e:
            raise SnapshotError(f"{path}: cannot read it as YAML without PyYAML ({e}); install python3-yaml, "
                                "or convert it to JSON first") from e
    if not isinstance(doc, dict):
        raise SnapshotError(f"{path}: not a snapshot document (an object of entity arrays)")
    return doc


def snapshot_tool():
    tool = REPO / "target" / "release" / "cti-kaltura-snapshot"
    return str(tool) if tool.exists() else None


COUNTS = re.compile(r"^routable regions (\d+), eligible edges (\d+), live channels (\d+), catch-up programs (\d+)$", re.M)


def tool_counts(tool, path):
    """{"routable_regions", "eligible_edges", "live_channels", "catchup_programs"} from
    `TOOL check PATH`; SnapshotError when it does not load or says something else."""
    out = subprocess.run([tool, "check", str(path)], capture_output=True, text=True, check=False, timeout=300)
    m = COUNTS.search(out.stdout)
    if out.returncode != 0 or not m:
        raise SnapshotError(f"{tool} check {path}: exit {out.returncode}: {(out.stderr or out.stdout).strip()[:300]}")
    keys = ("routable_regions", "eligible_edges", "live_channels", "catchup_programs")
    return dict(zip(keys, map(int, m.groups())))
