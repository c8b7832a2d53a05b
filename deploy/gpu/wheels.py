"""The wheels the GPU machine needs: which to download here (`pins`), which to install there (`needed`).

    python deploy/gpu/wheels.py pins                    # name==version per line, versions from constraints.txt
    python deploy/gpu/wheels.py needed build/gpu-wheels # the wheel files that image lacks (or has too old)

Standard library and `packaging` only: it runs under the GPU image's python3 before anything is installed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
CONSTRAINTS = HERE.parents[1] / "constraints.txt"


def _lines(path: Path) -> list[str]:
    return [line.split("#")[0].strip() for line in path.read_text().splitlines() if line.split("#")[0].strip()]


def requirements(path: Path = REQUIREMENTS) -> list[Requirement]:
    return [Requirement(line) for line in _lines(path)]


def pins(reqs: list[Requirement], constraints: Path = CONSTRAINTS) -> list[str]:
    """name==version for each requirement, the version constraints.txt pins (which must satisfy its floor)."""
    pinned = {canonicalize_name(r.name): r for r in map(Requirement, _lines(constraints))}
    out = []
    for req in reqs:
        found = pinned.get(canonicalize_name(req.name))
        version = next((s.version for s in found.specifier if s.operator == "=="), None) if found else None
        if version is None:
            raise SystemExit(f"{req.name}: constraints.txt pins no version")
        if not req.specifier.contains(version, prereleases=True):
            raise SystemExit(f"{req.name}: constraints.txt pins {version}, below this list's {req.specifier}")
        out.append(f"{req.name}=={version}")
    return out


def installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def needed(reqs: list[Requirement], wheels: Path) -> list[Path]:
    """The carried wheels to install here: a requirement with a floor only where this python's own version is
    missing or below it; one without, unless this python has that very version."""
    files = {canonicalize_name(parse_wheel_filename(w.name)[0]): w for w in wheels.glob("*.whl")}
    chosen = []
    for req in reqs:
        wheel = files.get(canonicalize_name(req.name))
        if wheel is None:
            raise SystemExit(f"no wheel for {req.name} in {wheels}: run `make gpu-wheels` and carry {wheels}")
        have = installed(req.name)
        carried = str(parse_wheel_filename(wheel.name)[1])
        if have is not None and (have == carried or (req.specifier and req.specifier.contains(have, True))):
            continue
        chosen.append(wheel)
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("pins", help="name==version to download")
    need = sub.add_parser("needed", help="wheel files this python lacks")
    need.add_argument("wheels", type=Path)
    args = parser.parse_args(argv)
    reqs = requirements()
    lines = pins(reqs) if args.what == "pins" else [str(p) for p in needed(reqs, args.wheels)]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
