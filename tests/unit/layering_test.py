#!/usr/bin/env python3
"""Dependencies point one way (docs/architecture.md, "Rooms"):

    launcher -> trial -> coordinator -> store ------------> config -> core
                                     -> schedule -> search ->
    {config, store} -> sharding -> core;  coordinator -> collectives -> core
    launcher -> report -> store

The build enforces this too (a room links only the rooms below it); this
test says which include broke it, and also catches what a build cannot:
a relative include that reaches into another room's src/.

Usage: layering_test.py SOURCE_DIR. Exits 1 listing every offending
file:line, 0 when there is none.
"""
import pathlib
import re
import sys

# room folder -> the header folders (xpscale/<name>/) it may include.
BELOW = {
    "core": set(),
    "sharding": {"core"},
    "collectives": {"core"},
    "config": {"core", "sharding"},
    "search": {"config"},
    "schedule": {"search"},
    "store": {"config", "sharding"},
    "coordinator": {"store", "schedule", "collectives"},
    "trial": {"coordinator", "sharding", "collectives"},
    "report": {"store"},
    "launcher": {"trial", "report"},
}
ROOMS = {
    "core": "core",
    "sharding": "sharding",
    "collectives": "collectives",
    "config": "runtime/config",
    "search": "runtime/search",
    "schedule": "runtime/schedule",
    "store": "runtime/store",
    "coordinator": "runtime/coordinator",
    "trial": "runtime/trial",
    "report": "report",
    "launcher": "launcher",
}


def allowed(room):
    """The rooms `room` may include: itself and all below it, transitively."""
    seen, frontier = {room}, [room]
    while frontier:
        for below in BELOW[frontier.pop()]:
            if below not in seen:
                seen.add(below)
                frontier.append(below)
    return seen


INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^">]+)[">]')


def check(root):
    problems = []
    for room, folder in ROOMS.items():
        ok = allowed(room)
        base = root / folder
        if not base.is_dir():
            problems.append(f"{folder}: the room is missing")
            continue
        for path in sorted(base.rglob("*")):
            if path.suffix not in {".h", ".cpp", ".cu", ".in"} or not path.is_file():
                continue
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                target = m.group(1)
                where = f"{path.relative_to(root)}:{n}"
                if ".." in pathlib.PurePosixPath(target).parts:
                    problems.append(f"{where}: relative include '{target}' reaches out of {folder}")
                    continue
                parts = target.split("/")
                if len(parts) >= 3 and parts[0] == "xpscale" and parts[1] in BELOW:
                    if parts[1] not in ok:
                        problems.append(
                            f"{where}: {room} includes {target}, but {room} may only use "
                            f"{', '.join(sorted(ok - {room})) or 'nothing else'}")
                elif len(parts) == 2 and parts[0] == "xpscale" and parts[1] == "xpscale.h":
                    problems.append(f"{where}: the umbrella header is for users, not for {room}")
    return problems


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print(f"layering: {len(problems)} include(s) against the direction of dependencies")
        return 1
    print("layering: every include points down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
