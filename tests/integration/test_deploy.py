"""Deployment files: Dockerfiles lint clean, compose and Kubernetes manifests parse and validate,
and every command they (and the docs beside them) run exists in the `basemap` CLI with those
options. Docker itself can't run here; these checks are what can."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from basemap.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile.*"))
MANIFESTS = sorted((ROOT / "workflows" / "k8s").glob("*.yaml"))
COMPOSE = ROOT / "docker" / "compose.yaml"


def resolve_subcommand(args: list[str]) -> None:
    """Resolve nested groups down to the leaf command and parse its options."""
    group: click.Command = cli
    rest = list(args)
    while isinstance(group, click.Group):
        assert rest, f"`basemap {' '.join(args)}` names a group, not a command"
        name = rest.pop(0)
        sub = group.get_command(click.Context(group), name)
        assert sub is not None, f"`basemap {' '.join(args)}`: no command {name!r}"
        group = sub
    rest = [re.sub(r"\$\((\w+)\)", "0", a) for a in rest]
    group.make_context(name, rest)  # raises click.UsageError on unknown options


def test_there_are_two_dockerfiles():
    assert {p.name for p in DOCKERFILES} >= {"Dockerfile.gpu", "Dockerfile.cpu"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_lints_clean(dockerfile):
    hadolint = Path(sys.executable).parent / "hadolint"
    r = subprocess.run([str(hadolint), "--no-color", str(dockerfile)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_what_exists_and_enters_basemap(dockerfile):
    text = dockerfile.read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), f"{dockerfile.name}: COPY {src} does not exist"
    assert 'ENTRYPOINT ["tini", "--", "basemap"]' in text
    assert "torch==${TORCH_VERSION}" in text


def compose_services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_compose_parses_and_runs_real_commands():
    services = compose_services()
    assert {"scheduler", "worker-cpu", "worker-gpu", "s3", "tiles"} <= set(services)
    built = {"basemap:cpu", "basemap:gpu"}
    for name, svc in services.items():
        if svc["image"] not in built:
            continue
        entry = svc.get("entrypoint")
        if entry is None:  # the image's ENTRYPOINT: basemap
            resolve_subcommand(list(svc["command"]))
        else:
            assert entry[:3] == ["tini", "--", "dask"], name
            assert entry[3] in ("scheduler", "worker"), name
    gpu = services["worker-gpu"]
    assert gpu["image"] == "basemap:gpu"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "--gpus" in gpu["command"]
    assert (ROOT / "docker" / "nginx.conf").exists()


def k8s_docs() -> list[tuple[Path, dict]]:
    return [(p, d) for p in MANIFESTS for d in yaml.safe_load_all(p.read_text()) if d]


def containers(doc: dict) -> list[dict]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]["containers"] if "template" in spec else []


def test_k8s_manifests_validate_against_the_schema():
    import kubernetes_validate

    assert MANIFESTS, "no manifests in workflows/k8s"
    for _path, doc in k8s_docs():
        kubernetes_validate.validate(doc, "1.30.0", strict=True)


def test_k8s_manifests_run_real_commands_on_our_images():
    kinds = set()
    for path, doc in k8s_docs():
        kinds.add(doc["kind"])
        for c in containers(doc):
            image = c["image"].rsplit("/", 1)[-1].split(":")[0]
            assert image in ("basemap-cpu", "basemap-gpu"), f"{path.name}: {c['image']}"
            if c.get("command"):  # overrides the basemap entrypoint
                assert c["command"][:1] == ["dask"] and c["command"][1] in ("scheduler",)
            else:
                resolve_subcommand(c["args"])
            if "gpu" in image:
                assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
                assert "--gpus" in c["args"]
    assert {"Deployment", "Service", "Job", "CronJob"} <= kinds


def test_every_basemap_command_named_in_docs_exists():
    """`basemap <cmd> [<sub>]` in docker/, workflows/, docs/ and README must resolve in the CLI."""
    texts = [p.read_text() for p in [*(ROOT / "docker").iterdir(), *(ROOT / "workflows").rglob("*")]
             if p.is_file() and p.suffix in (".md", ".yaml", ".conf", ".py", "")]
    texts += [p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]]
    named = set()
    for text in texts:
        # In code: at the start of a line (shell blocks) or after a backtick (inline code).
        pattern = r"(?:^\s*|`)basemap ([a-z][a-z-]+)(?: ([a-z][a-z-]+))?"
        for m in re.finditer(pattern, text, flags=re.M):
            named.add((m.group(1), m.group(2)))
    assert named, "no `basemap ...` command found in the docs"
    missing = []
    for cmd, sub in sorted(named, key=str):
        command = cli.get_command(click.Context(cli), cmd)
        if command is None:
            missing.append(cmd)
        elif isinstance(command, click.Group) and sub is not None:
            if command.get_command(click.Context(command), sub) is None:
                missing.append(f"{cmd} {sub}")
    assert not missing, f"commands named in the docs but missing from the CLI: {missing}"


def test_readme_shell_examples_parse():
    """Each `basemap ...` line in the world-scale README parses with the CLI's options."""
    text = (ROOT / "workflows" / "README.md").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("basemap ")]
    assert lines
    for line in lines:
        args = shlex.split(line.split(" #", 1)[0].replace("\\", ""))[1:]
        resolve_subcommand(args)
