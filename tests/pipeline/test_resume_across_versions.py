"""An output started by an earlier layout of the package resumes: the inputs fingerprint of a
block job (what its ledger entry is keyed by) is the one the code before issue 33's move
computed, kept in tests/data/ledger_fingerprint.json (a fingerprint that changed would make
every finished block of every existing output be recomputed)."""

import json
from pathlib import Path

from basemap.grid import Block
from basemap.output.storage import LocalStorage
from basemap.pipeline.plan import BlockJob, BuildSettings
from basemap.stac.scene import Scene

FIXTURE = Path(__file__).parents[1] / "data" / "ledger_fingerprint.json"


def test_a_block_fingerprint_is_the_one_older_layouts_computed():
    doc = json.loads(FIXTURE.read_text())
    job = BlockJob(Block(*doc["block"]), tuple(Scene.from_dict(s) for s in doc["scenes"]),
                   BuildSettings(**doc["settings"]), LocalStorage("/nonexistent"))
    assert job.fingerprint() == doc["fingerprint"]
