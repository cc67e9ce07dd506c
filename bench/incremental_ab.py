"""Benchmark: +1% incremental runs of this checkout against another revision, paired on copies of one world.

A single `bench.pipeline` run cannot show a change of a second or two in an incremental run: the machine's speed
moves more than that between runs (DuckDB's own read of the same files took 8.5-12.0 s in one afternoon). Here both
codes get the same world and the same new data, and run one after the other, round after round, in alternating
order, so the machine's changing speed touches both alike:

1. The baseline revision is checked out beside this one (`git worktree`); a world of about N tracking events is
   simulated once and copied for each code.
2. Each code builds its copy in full, then runs once with no new data (neither is timed).
3. Each round, about 1% more data (the same for both) lands in both copies; each code runs the pipeline (`python -m
   orchestration.run`, as `make run` does: a new process per run), then runs once more with no new data.
4. Printed: each round's times, the means, the means above the runs with no new data, and in how many rounds this
   checkout was faster.

    python -m bench.incremental_ab --baseline 397e0dc --rounds 5 --workdir /tmp/ab

With ``--variant NAME:KEY=VALUE[,KEY=VALUE]`` (repeatable) instead of a baseline, this checkout is compared with
itself under those settings (an off switch, say), each variant on its own copy of the same data:

    python -m bench.incremental_ab --variant "in-process dbt off:DBT_IN_PROCESS=false" --rounds 3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench.http_load import cores
from bench.pipeline import (
    one_percent_more,
    pipeline_env,
    prepare_manifest,
    run_pipeline,
    visitors_for,
)
from simulator.cli import write_world
from simulator.world import WorldConfig

ROOT = Path(__file__).resolve().parents[1]


def _run(code: Path, work: Path, env: dict | None = None) -> float:
    """One pipeline run of ``code`` (a checkout) on the data in ``work``, in a new process: seconds."""
    return run_pipeline({**pipeline_env(work), **(env or {})}, cwd=code)[0]


def _variant(text: str) -> tuple[str, dict]:
    name, _, settings = text.partition(":")
    env = dict(item.split("=", 1) for item in settings.split(",") if "=" in item)
    if not name or not env:
        raise SystemExit(f"--variant {text!r}: expected NAME:KEY=VALUE[,KEY=VALUE]")
    return name, env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", help="the git revision to compare this checkout with")
    ap.add_argument("--variant", action="append", default=[], help="NAME:KEY=VALUE[,KEY=VALUE], instead of a baseline")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tracking-events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--workdir", help="keep the data here (default: a temporary folder, removed afterwards)")
    args = ap.parse_args(argv)
    if bool(args.baseline) == bool(args.variant):
        raise SystemExit("give either --baseline or one or more --variant")
    if args.variant:
        return _compare_variants(args)
    revision = subprocess.run(
        ["git", "rev-parse", "--verify", f"{args.baseline}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if revision.returncode != 0:
        raise SystemExit(f"--baseline {args.baseline!r} is not a revision of this repository")
    work = (Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-ab-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    baseline_code = work / "baseline-code"
    codes = {"baseline": baseline_code, "this checkout": ROOT}
    visitors = visitors_for(args.tracking_events)
    print(
        f"# +1% incremental runs, {cores()} cores: this checkout against {args.baseline} "
        f"({revision.stdout.strip()[:12]}), {args.rounds} rounds; workdir {work}",
        flush=True,
    )
    try:
        if not baseline_code.exists():
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(baseline_code), revision.stdout.strip()],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
        world = work / "world"
        if not (world / "landing").exists():
            write_world(WorldConfig(visitors=visitors, seed=args.seed), world / "landing", world / "truth.jsonl")
        for name, code in codes.items():
            data = work / name.replace(" ", "-")
            shutil.rmtree(data, ignore_errors=True)
            shutil.copytree(world / "landing", data / "landing")
            # each code parses its own dbt project with the warehouse path its runs use (as bench.pipeline does)
            prepare_manifest(pipeline_env(data), cwd=code)
            print(f"{name}: full run {_run(code, data):.1f} s, no new data {_run(code, data):.1f} s", flush=True)
        times: dict[str, list[float]] = {name: [] for name in codes}
        fixed: dict[str, list[float]] = {name: [] for name in codes}
        for r in range(args.rounds):
            order = list(codes) if r % 2 else list(reversed(codes))
            for name in codes:
                data = work / name.replace(" ", "-")
                write_world(
                    WorldConfig(visitors=one_percent_more(visitors), seed=args.seed + 1000 + r),
                    data / "landing",
                    data / f"truth_{r}.jsonl",
                )
            for name in order:
                times[name].append(_run(codes[name], work / name.replace(" ", "-")))
            for name in order:
                fixed[name].append(_run(codes[name], work / name.replace(" ", "-")))
            print(
                f"round {r + 1}: "
                + ", ".join(f"{name} {times[name][-1]:.1f} s (no new data {fixed[name][-1]:.1f} s)" for name in codes),
                flush=True,
            )
        for name in codes:
            mean, mean_fixed = statistics.mean(times[name]), statistics.mean(fixed[name])
            print(
                f"{name}: +1% run {mean:.2f} s on average, no new data {mean_fixed:.2f} s, "
                f"above it {mean - mean_fixed:.2f} s"
            )
        faster = sum(a < b for a, b in zip(times["this checkout"], times["baseline"], strict=False))
        print(f"this checkout faster in {faster} of {args.rounds} rounds")
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(baseline_code)], cwd=ROOT, check=False, capture_output=True
        )
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _compare_variants(args) -> int:
    variants = dict(_variant(v) for v in args.variant)
    variants["this checkout"] = {}
    work = (Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-ab-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    visitors = visitors_for(args.tracking_events)
    print(
        f"# +1% incremental runs, {cores()} cores: this checkout against "
        + ", ".join(f"{n} ({e})" for n, e in variants.items() if e)
        + f", {args.rounds} rounds; workdir {work}",
        flush=True,
    )
    try:
        world = work / "world"
        if not (world / "landing").exists():
            write_world(WorldConfig(visitors=visitors, seed=args.seed), world / "landing", world / "truth.jsonl")
        data = {name: work / f"variant-{i}" for i, name in enumerate(variants)}
        for name, env in variants.items():
            shutil.rmtree(data[name], ignore_errors=True)
            shutil.copytree(world / "landing", data[name] / "landing")
            prepare_manifest({**pipeline_env(data[name]), **env}, cwd=ROOT)
            print(
                f"{name}: full run {_run(ROOT, data[name], env):.1f} s, "
                f"no new data {_run(ROOT, data[name], env):.1f} s",
                flush=True,
            )
        times: dict[str, list[float]] = {name: [] for name in variants}
        fixed: dict[str, list[float]] = {name: [] for name in variants}
        for r in range(args.rounds):
            order = list(variants) if r % 2 else list(reversed(variants))
            for name in variants:
                write_world(
                    WorldConfig(visitors=one_percent_more(visitors), seed=args.seed + 1000 + r),
                    data[name] / "landing",
                    data[name] / f"truth_{r}.jsonl",
                )
            for name in order:
                times[name].append(_run(ROOT, data[name], variants[name]))
            for name in order:
                fixed[name].append(_run(ROOT, data[name], variants[name]))
            print(
                f"round {r + 1}: "
                + ", ".join(
                    f"{name} {times[name][-1]:.1f} s (no new data {fixed[name][-1]:.1f} s)" for name in variants
                ),
                flush=True,
            )
        for name in variants:
            print(
                f"{name}: +1% run {statistics.mean(times[name]):.2f} s on average, "
                f"no new data {statistics.mean(fixed[name]):.2f} s"
            )
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
