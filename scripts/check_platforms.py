"""Prove that every dependency of lipdub has a wheel for each supported platform and Python, without downloading.

For each requirement of pyproject.toml (dependencies and the web/train extras) the package's file list is read
once from PyPI's JSON simple index (PEP 691; a few MB in all, no wheel is downloaded). For each target (OS/CPU
x Python version), with the requirement's markers evaluated for that target, some version the requirement
allows must have a wheel whose tags the target accepts (packaging.tags, pip's own rules) and whose
Requires-Python admits it. The lowest torch the range allows must have one too. Exit code 1 lists what is
missing.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import tomllib
from packaging import tags
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
INDEX = "https://pypi.org/simple/"
EXTRAS = ("web", "train")
PYTHONS = ((3, 10), (3, 11), (3, 12))
# pocketsphinx ships Linux aarch64 wheels for CPython 3.11 (and 3.13) only: elsewhere it builds from source
ONLY_PYTHONS = {"linux-aarch64": ((3, 11),)}


def _manylinux(arch: str) -> list[str]:
    return [f"manylinux_2_{m}_{arch}" for m in range(28, 16, -1)] + [f"manylinux2014_{arch}"]


# name -> (platform tags the target accepts, marker environment)
TARGETS = {
    "linux-x86_64": (_manylinux("x86_64") + ["manylinux2010_x86_64", "manylinux1_x86_64"],
                     {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"}),
    "linux-aarch64": (_manylinux("aarch64"),
                      {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "aarch64"}),
    "macos-arm64": (list(tags.mac_platforms((14, 0), "arm64")),
                    {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64"}),
    "windows-x86_64": (["win_amd64"], {"sys_platform": "win32", "platform_system": "Windows",
                                       "platform_machine": "AMD64"}),
}


def requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in EXTRAS:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def wheels(name: str) -> list[tuple[Version, frozenset[tags.Tag], SpecifierSet]]:
    """(version, tags, requires-python) of every wheel of `name` on the index (yanked ones left out)."""
    request = urllib.request.Request(INDEX + canonicalize_name(name) + "/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        files = json.load(response)["files"]
    out = []
    for f in files:
        if not f["filename"].endswith(".whl") or f.get("yanked"):
            continue
        try:
            _, version, _, wheel_tags = parse_wheel_filename(f["filename"])
            needs = SpecifierSet(f.get("requires-python") or "")
        except (InvalidVersion, ValueError):  # old uploads with non-standard names or metadata
            continue
        out.append((version, wheel_tags, needs))
    return out


def accepted(target: str, python: tuple[int, int]) -> set[tags.Tag]:
    platforms = TARGETS[target][0]
    return set(tags.cpython_tags(python, platforms=platforms)) | set(
        tags.compatible_tags(python, f"cp{python[0]}{python[1]}", platforms=platforms))


def check(req: Requirement, files: list, target: str, python: tuple[int, int]) -> str | None:
    """None when `req` has a wheel for the target, else what is missing."""
    py = f"{python[0]}.{python[1]}"
    if req.marker and not req.marker.evaluate({**TARGETS[target][1], "python_version": py, "extra": ""}):
        return None
    ok = accepted(target, python)
    versions = {v for v, wheel_tags, needs in files if wheel_tags & ok and needs.contains(py + ".0")}
    if not any(req.specifier.contains(v) for v in versions):
        newest = ", ".join(map(str, sorted(versions, reverse=True)[:4])) or "none"
        return f"{target} py{py}: no wheel for {req} (wheels there: {newest})"
    if req.name == "torch":  # the lowest torch the range allows must install as well
        lowest = Version(min(s.version for s in req.specifier if s.operator in (">=", "==")))
        if lowest not in versions:
            return f"{target} py{py}: no wheel for the lowest allowed torch {lowest}"
    return None


def main() -> int:
    reqs = requirements()
    print(f"check-platforms: reading the wheel lists of {len(reqs)} requirements from PyPI ...", flush=True)
    with ThreadPoolExecutor(8) as pool:
        files = dict(zip((r.name for r in reqs), pool.map(lambda r: wheels(r.name), reqs), strict=True))
    problems, checked = [], 0
    for req in reqs:
        for target in TARGETS:
            for python in ONLY_PYTHONS.get(target, PYTHONS):
                checked += 1
                if problem := check(req, files[req.name], target, python):
                    problems.append(problem)
    for line in problems:
        print(f"check-platforms: {line}", file=sys.stderr)
    targets = ", ".join(f"{t} (Python {', '.join(f'{a}.{b}' for a, b in ONLY_PYTHONS.get(t, PYTHONS))})"
                        for t in TARGETS)
    print(f"check-platforms: {checked - len(problems)} of {checked} requirement x platform x Python checks have a "
          f"wheel: {targets}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
