"""Sampling profile of the dispatcher worker with py-spy (optional), and its summary.

``record`` attaches py-spy to a running worker (``--nonblocking``: the worker is not paused) and
writes collapsed stacks (``--format raw``: ``frame;frame;... count`` per line, root first).
``summarize`` is pure: self time per function, inclusive time per function, and the share of
samples whose innermost frame lives in each package.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def record(pid: int, seconds: int, out: Path, rate: int = 100) -> subprocess.Popen[bytes] | None:
    """Start py-spy on ``pid`` for ``seconds``; None if py-spy is not installed."""
    exe = py_spy()
    if exe is None:
        return None
    return subprocess.Popen(  # noqa: S603 - py-spy from our own venv
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@dataclass(frozen=True)
class Frame:
    func: str
    file: str

    def label(self) -> str:
        return f"{self.func} ({self.file})"


def parse_frame(text: str) -> Frame:
    m = _FRAME.match(text.strip())
    if m is None:
        return Frame(text.strip(), "?")
    return Frame(m.group("func"), m.group("file"))


def package_of(file: str) -> str:
    """'site-packages/aiokafka/...' -> 'aiokafka'; 'dispatcher/...' -> 'dispatcher/<module>'."""
    path = file.replace("\\", "/")
    if "site-packages/" in path:
        rest = path.split("site-packages/", 1)[1]
        return rest.split("/", 1)[0].removesuffix(".py")
    parts = [p for p in path.split("/") if p]
    if "dispatcher" in parts:
        i = parts.index("dispatcher")
        return "dispatcher/" + "/".join(parts[i + 1 : i + 2]).removesuffix(".py")
    if "python3.11" in parts:
        i = parts.index("python3.11")
        return "stdlib:" + "/".join(parts[i + 1 : i + 2]).removesuffix(".py")
    if parts and parts[0] in {
        "aiokafka",
        "faust",
        "mode",
        "asyncpg",
        "pydantic",
        "structlog",
        "orjson",
        "kafka",
        "prometheus_client",
        "pydantic_core",
        "yarl",
        "aiohttp",
        "croniter",
        "venusian",
    }:
        return parts[0]
    if parts and parts[0].endswith(".py"):
        return "stdlib:" + parts[0].removesuffix(".py")
    return parts[0] if parts else "?"


# Innermost frames that mean "waiting", not working (py-spy --nonblocking cannot always tell).
IDLE_LEAVES = (
    "select (selectors.py)",
    "EpollSelector.select (selectors.py)",
    "PollSelector.select (selectors.py)",
    "wait (threading.py)",
    "Condition.wait (threading.py)",
    "Event.wait (threading.py)",
    "_wait_for_tstate_lock (threading.py)",
)


@dataclass(frozen=True)
class ProfileSummary:
    samples: int  # busy samples (idle leaves removed)
    idle_samples: int
    threads: list[tuple[str, int]]
    self_top: list[tuple[str, int]]
    packages_self: list[tuple[str, int]]
    packages_inclusive: list[tuple[str, int]]
    dispatcher_inclusive: list[tuple[str, int]]
    callers: dict[str, list[tuple[str, int]]]  # top self frames -> their commonest callers

    def as_dict(self) -> dict[str, object]:
        def pct(rows: list[tuple[str, int]]) -> list[dict[str, object]]:
            return [
                {"frame": name, "samples": n, "pct": round(100 * n / max(1, self.samples), 1)}
                for name, n in rows
            ]

        return {
            "samples": self.samples,
            "idle_samples": self.idle_samples,
            "threads": pct(self.threads),
            "self_top": pct(self.self_top),
            "packages_self": pct(self.packages_self),
            "packages_inclusive": pct(self.packages_inclusive),
            "dispatcher_inclusive": pct(self.dispatcher_inclusive),
            "callers": {leaf: pct(rows) for leaf, rows in self.callers.items()},
        }


def _thread_of(frames: list[Frame]) -> str:
    """Threads start in ``Thread._bootstrap``; everything else (partial stacks included) is
    the main thread, where faust's worker runs its event loop."""
    if frames[0].func != "Thread._bootstrap":
        return "main thread (faust worker event loop)"
    if any("mode/threads.py" in f.file for f in frames[:6]):
        return "mode ServiceThread (aiokafka consumer)"
    return "other threads"


def summarize(collapsed: str, top: int = 15) -> ProfileSummary:
    """Summarise py-spy's raw (collapsed) output; shares are of busy samples."""
    self_counts: Counter[str] = Counter()
    pkg_self: Counter[str] = Counter()
    pkg_incl: Counter[str] = Counter()
    disp_incl: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    parents: dict[str, Counter[str]] = {}
    total = idle = 0
    for raw_line in collapsed.splitlines():
        line = raw_line.strip()
        if not line or " " not in line:
            continue
        stack, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        frames = [parse_frame(f) for f in stack.split(";") if f.strip()]
        # py-spy may put a process/thread name first; it is not a frame
        frames = [
            f for f in frames if f.file != "?" or not f.func.startswith(("process", "thread"))
        ]
        if not frames:
            continue
        leaf = frames[-1]
        if leaf.label() in IDLE_LEAVES:
            idle += count
            continue
        total += count
        threads[_thread_of(frames)] += count
        self_counts[leaf.label()] += count
        if len(frames) > 1:
            parents.setdefault(leaf.label(), Counter())[frames[-2].label()] += count
        pkg_self[package_of(leaf.file)] += count
        for pkg in {package_of(f.file) for f in frames}:
            pkg_incl[pkg] += count
        for label in {f.label() for f in frames if package_of(f.file).startswith("dispatcher/")}:
            disp_incl[label] += count
    top_self = self_counts.most_common(top)
    return ProfileSummary(
        samples=total,
        idle_samples=idle,
        threads=threads.most_common(),
        self_top=top_self,
        packages_self=pkg_self.most_common(top),
        packages_inclusive=pkg_incl.most_common(top),
        dispatcher_inclusive=disp_incl.most_common(top),
        callers={leaf: parents[leaf].most_common(3) for leaf, _ in top_self[:4] if leaf in parents},
    )
