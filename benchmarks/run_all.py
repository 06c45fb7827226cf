"""Run every benchmark in `benchmarks/` at the scales given and write `docs/benchmarks.md`.

`make bench` runs this with scales 10,000 and 100,000; `make bench-full` adds 1,000,000
(with two touches per person, to fit memory) and runs `bench_pipeline`'s Enterprise-limited
backfill there too (`--limited-up-to 1000000`: about 30 minutes more, a second seeding and a
pass bound by the allowance, 132 s and 1,629 s in docs/benchmarks.md). Each benchmark
(`benchmarks/bench_*.py`) runs in its own process, once per scale; the document gets one
section per benchmark with, per scale, the command that produced it, its Markdown output as
it printed it, and what it was measured on. `docs/benchmarks.md` is generated only: never
edit it by hand, rerun this.

    python -m benchmarks.run_all --scales 10000,100000
    python -m benchmarks.run_all --scales 1000000 --only bench_pipeline   # replaces one section

With `--only`, the sections of the other benchmarks already in the document are kept.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.bench_pull import machine

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "benchmarks.md"
LARGE = 1_000_000  # from this scale on, two touches per person (memory)
LARGE_TOUCHES_PER_PERSON = 2
SECTION = re.compile(r"^## `(bench_\w+)`", re.MULTILINE)
SCALE = re.compile(r"^### ([\d,]+) people$", re.MULTILINE)


@dataclass(frozen=True)
class Outcome:
    """One benchmark at one scale: its command, exit, output and wall time."""

    command: list[str]
    exit_code: int
    output: str
    errors: str
    seconds: float
    measured_on: str


def benchmarks(only: Sequence[str]) -> list[str]:
    names = sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))
    unknown = set(only) - set(names)
    if unknown:
        raise SystemExit(f"run_all: no benchmark named {', '.join(sorted(unknown))}; "
                         f"benchmarks: {', '.join(names)}.")
    return [n for n in names if not only or n in only]


def options_of(name: str) -> str:
    """The benchmark's own `--help`, to learn how it names its scale."""
    found = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", "--help"], cwd=ROOT,
                           env=environment(), capture_output=True, text=True)
    return found.stdout


def command_for(
    name: str, scale: int, options: str, limited_up_to: int | None = None
) -> list[str]:
    """`--scale N` or `--people N`, whichever the benchmark takes; fewer touches at 1M;
    `--limited-up-to N` to the benchmarks that take it, when given."""
    command = [sys.executable, "-m", f"benchmarks.{name}"]
    command += ["--people" if "--people" in options and "--scale" not in options
                else "--scale", str(scale)]
    if limited_up_to is not None and "--limited-up-to" in options:
        command += ["--limited-up-to", str(limited_up_to)]
    if scale >= LARGE:
        if "--touches-per-person" in options:
            command += ["--touches-per-person", str(LARGE_TOUCHES_PER_PERSON)]
        elif "--touches " in options or "--touches TOUCHES" in options:
            command += ["--touches", str(scale * LARGE_TOUCHES_PER_PERSON)]
    return command


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def run(command: list[str], timeout: float | None) -> Outcome:
    started = time.perf_counter()
    print(f"run_all: {shown(command)}", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(command, cwd=ROOT, env=environment(), capture_output=True,
                              text=True, timeout=timeout)
        code, output, errors = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as expired:
        code, output = -1, _text(expired.stdout)
        errors = f"stopped after the {timeout:.0f} s timeout\n{_text(expired.stderr)}"
    seconds = time.perf_counter() - started
    print(f"run_all: exit {code} after {seconds:.0f} s", file=sys.stderr, flush=True)
    return Outcome(command, code, output, errors, seconds, machine())


def _text(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value or ""


def shown(command: Sequence[str]) -> str:
    """The command as a reader types it, from the repository root."""
    return " ".join(["python", *command[1:]])


def section(name: str, outcomes: Sequence[tuple[int, Outcome]], kept: str = "") -> str:
    """The benchmark's section: its scales run now, and those of `kept` (the section as the
    document held it) that were not run again, in the order of their scale."""
    doc = module_summary(name)
    parts = [f"## `{name}`", doc] if doc else [f"## `{name}`"]
    scales = {scale: "\n\n".join(subsection(scale, outcome)) for scale, outcome in outcomes}
    for scale, text in existing_scales(kept).items():
        scales.setdefault(scale, text)
    parts += [scales[scale] for scale in sorted(scales)]
    return "\n\n".join(parts)


def existing_scales(text: str) -> dict[int, str]:
    starts = [(int(m.group(1).replace(",", "")), m.start()) for m in SCALE.finditer(text)]
    ends = [start for _, start in starts[1:]] + [len(text)] if starts else []
    return {scale: text[start:end].strip()
            for (scale, start), end in zip(starts, ends, strict=True)}


def subsection(scale: int, outcome: Outcome) -> list[str]:
    parts = [f"### {scale:,} people"]
    parts.append(f"Command: `{shown(outcome.command)}` (exit {outcome.exit_code}, "
                 f"{outcome.seconds:,.0f} s).")
    parts.append(outcome.output.strip() or "(no output)")
    if outcome.exit_code != 0:
        tail = "\n".join(outcome.errors.strip().splitlines()[-15:])
        parts.append(f"The benchmark failed; the end of its error output:\n\n```\n{tail}\n```")
    parts.append(f"`run_all` finished this scale on: {outcome.measured_on}.")
    return parts


def module_summary(name: str) -> str:
    """The first paragraph of the benchmark's docstring, read without importing it."""
    text = (ROOT / "benchmarks" / f"{name}.py").read_text()
    found = re.match(r'\s*(?:#.*\n)*\s*"""(.*?)(?:\n\n|""")', text, re.DOTALL)
    return " ".join(found.group(1).split()) if found else ""


def existing_sections(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    text = path.read_text()
    starts = [(m.group(1), m.start()) for m in SECTION.finditer(text)]
    ends = [start for _, start in starts[1:]] + [len(text)] if starts else []
    return {name: text[start:end].strip() for (name, start), end in zip(starts, ends,
                                                                         strict=True)}


def document(sections: dict[str, str], order: Sequence[str], argv: Sequence[str]) -> str:
    header = (
        "# Benchmarks\n\n"
        "Generated by `benchmarks/run_all.py` (`make bench`, `make bench-full`), last by "
        f"`python -m benchmarks.run_all {' '.join(argv)}` at {datetime.now(UTC):%Y-%m-%d %H:%M} "
        "UTC, which rewrote the sections it ran and kept the others. Do not edit by hand: "
        "every figure here comes from the command shown above it; rerun it to check. "
        "How each benchmark measures is described in `benchmarks/README.md`. Wall times "
        "depend on the machine and on what else it was running: each section says what it "
        "was measured on, including the load average.")
    body = [sections[name] for name in order if name in sections]
    body += [text for name, text in sections.items() if name not in order]
    return "\n\n".join([header, *body]) + "\n"


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".md.{os.getpid()}.partial")
    partial.write_text(text)
    partial.replace(path)


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scales", default="10000,100000",
                        help="comma-separated people counts (default 10000,100000)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this benchmark (repeatable); other sections are kept")
    parser.add_argument("--drop-other-scales", action="store_true",
                        help="with --only: drop the scales of these benchmarks not run now "
                        "(for figures a fixed benchmark no longer stands by)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds one benchmark at one scale may take")
    parser.add_argument("--limited-up-to", type=int, default=None, metavar="N",
                        help="passed to the benchmarks that take it (bench_pipeline: run the "
                        "Enterprise-limited backfill up to N people; its default is 100,000)")
    parser.add_argument("--out", type=Path, default=DOCUMENT)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = arguments(raw)
    scales = [int(s.replace("_", "")) for s in args.scales.split(",") if s.strip()]
    names = benchmarks(args.only)
    sections: dict[str, str] = {}
    failed = 0
    for name in names:
        options = options_of(name)
        outcomes = [
            (scale, run(command_for(name, scale, options, args.limited_up_to), args.timeout))
            for scale in scales
        ]
        failed += sum(1 for _, outcome in outcomes if outcome.exit_code != 0)
        # With --only, the document is read again just before writing, so two runs of
        # different benchmarks at once both keep theirs, and scales not run again are kept.
        kept = existing_sections(args.out) if args.only else {}
        earlier = "" if args.drop_other_scales else kept.get(name, "")
        sections[name] = section(name, outcomes, earlier)
        # Written after every benchmark: a long run stopped half-way keeps what it measured.
        write_atomically(args.out, document({**kept, **sections}, benchmarks(()), raw))
    print(f"run_all: wrote {args.out} ({failed} failed runs)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
