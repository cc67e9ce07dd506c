"""Write a simulated world into a landing zone, plus its ground-truth file."""

from __future__ import annotations

import argparse
import calendar
import heapq
import itertools
import json
import os
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

from ingestion.config import owner_only_files
from ingestion.landing import STRIPE_DIR, TRACKING_DIR, write_jsonl_atomic
from simulator.stripe_objects import BASIL_AND_LATER
from simulator.world import World, WorldConfig


def default_truth_path(landing_dir: Path) -> Path:
    return Path(landing_dir).resolve().parent / "ground_truth" / "purchases.jsonl"


def default_ad_account_path(landing_dir: Path) -> Path:
    """The simulated TikTok ad account and its daily report figures, which fakes/tiktok_reporting.py serves."""
    return Path(landing_dir).resolve().parent / "tiktok_ads" / "account.json"


def _write_ad_account(account: dict, path: Path, replace: bool) -> None:
    """Another world written beside an earlier one adds its figures to the same ads and days."""
    if path.exists() and not replace:
        old = json.loads(path.read_text())
        for adv_id, adv in account["advertisers"].items():
            mine = old["advertisers"].setdefault(adv_id, {**adv, "daily": []})
            by_key = {(d["day"], d["ad_id"]): d for d in mine["daily"]}
            for d in adv["daily"]:
                if (d["day"], d["ad_id"]) in by_key:
                    for k, v in d.items():
                        if k not in ("day", "ad_id"):
                            by_key[(d["day"], d["ad_id"])][k] = round(by_key[(d["day"], d["ad_id"])][k] + v, 2)
                else:
                    mine["daily"].append(d)
        account = old
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(account, indent=1, sort_keys=True))
    os.replace(tmp, path)


# persons whose records are held in memory at once: a world of any size is written in bounded memory (a 3M-event
# world held every record at once: about 12 GB)
CHUNK_VISITORS = 20_000


def _sorted_run(records: list, scratch: Path) -> Path:
    """One chunk's records sorted by delivery time (stable: equal times keep generation order), one line each:
    the day, the time and the JSON, tab-separated."""
    path = scratch / f"run-{len(list(scratch.iterdir())):06d}.tsv"
    with open(path, "w") as f:
        for at, rec in sorted(records, key=lambda r: r[0]):
            micros = calendar.timegm(at.utctimetuple()) * 1_000_000 + at.microsecond  # exact, unlike a float
            f.write(f"{at.strftime('%Y-%m-%d')}\t{micros:020d}\t{json.dumps(rec, separators=(',', ':'))}\n")
    return path


def _write_days(runs: list[Path], target: Path) -> int:
    """Merge the sorted runs (heapq.merge is stable across its inputs, which are in generation order: the same order
    as sorting every record at once) and write one landing file per day."""
    files = [open(r) for r in runs]
    count = 0
    try:
        merged = heapq.merge(*files, key=lambda line: line.split("\t", 2)[1])
        for day, lines in itertools.groupby(merged, key=lambda line: line.split("\t", 1)[0]):
            records = (line.split("\t", 2)[2].rstrip("\n") for line in lines)
            count += write_jsonl_atomic(target / f"{day}.jsonl", records)
    finally:
        for f in files:
            f.close()
    return count


def write_world(cfg: WorldConfig, landing_dir: Path, truth_path: Path | None = None, *, replace: bool = False) -> dict:
    """Generate the world and write it: one file per source per day under ``sim-s<seed>`` folders. Records are
    written as they are generated (sorted runs of CHUNK_VISITORS persons, merged at the end), in bounded memory."""
    landing_dir = Path(landing_dir)
    truth_path = Path(truth_path) if truth_path else default_truth_path(landing_dir)
    folder = f"sim-s{cfg.seed}"
    targets = [landing_dir / STRIPE_DIR / folder, landing_dir / TRACKING_DIR / folder]
    existing = [t for t in targets if t.exists()]
    if existing and not replace:
        raise FileExistsError(
            f"{existing[0]} already holds a simulated world with seed {cfg.seed}; landing files are immutable. "
            "Use another --seed to add a world, or --replace to delete this one first."
        )
    for t in existing:
        shutil.rmtree(t)
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = truth_path.with_name(truth_path.name + ".tmp")
    mode = "a" if truth_path.exists() and not replace else "w"
    if mode == "a":
        shutil.copyfile(truth_path, tmp)
    purchases = 0
    with tempfile.TemporaryDirectory(prefix="world-") as d:
        scratch = {source: Path(d) / source for source in ("stripe", "tracking")}
        for path in scratch.values():
            path.mkdir()
        runs: dict[str, list[Path]] = {"stripe": [], "tracking": []}
        with open(tmp, mode) as truth:
            generator = World(cfg)
            for world in generator.lives(CHUNK_VISITORS):
                runs["stripe"].append(_sorted_run(world.stripe, scratch["stripe"]))
                runs["tracking"].append(_sorted_run(world.tracking, scratch["tracking"]))
                for row in world.truth:
                    truth.write(json.dumps({"seed": cfg.seed, **row}, separators=(",", ":")) + "\n")
                purchases += len(world.truth)
                world.stripe, world.tracking, world.truth = [], [], []
        n_stripe = _write_days(runs["stripe"], targets[0])
        n_tracking = _write_days(runs["tracking"], targets[1])
    os.replace(tmp, truth_path)
    ad_account_path = default_ad_account_path(landing_dir)
    _write_ad_account(
        generator.ad_account.to_json(generator.epoch_start.date(), cfg.end_date), ad_account_path, replace
    )
    return {
        "visitors": cfg.visitors,
        "seed": cfg.seed,
        "stripe_events": n_stripe,
        "tracking_events": n_tracking,
        "purchases": purchases,
        "truth_path": str(truth_path),
        "ad_account_path": str(ad_account_path),
    }


def main(argv: list[str] | None = None) -> int:
    owner_only_files()
    ap = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    ap.add_argument("--visitors", type=int, default=3000, help="number of people visiting the site")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--landing-dir", default=os.environ.get("LANDING_DIR", "./data/landing"))
    ap.add_argument(
        "--truth-path",
        default=None,
        help="ground-truth file (default: ground_truth/purchases.jsonl beside the landing dir)",
    )
    ap.add_argument("--replace", action="store_true", help="delete this seed's simulated files first")
    ap.add_argument(
        "--end-date",
        default=None,
        help="the world's last day, YYYY-MM-DD or 'today' (default: a fixed date, 2026-11-17)",
    )
    ap.add_argument(
        "--api-version",
        default=WorldConfig.api_version,
        choices=BASIL_AND_LATER,
        help="the Stripe API version of the events not rendered pre-basil (default: %(default)s)",
    )
    ap.add_argument(
        "--old-shape-share",
        type=float,
        default=WorldConfig.old_shape_share,
        help="share of Stripe events rendered at 2024-06-20, before basil (default: %(default)s)",
    )
    ap.add_argument(
        "--no-invoice-payment-events",
        action="store_true",
        help="a webhook endpoint not subscribed to invoice_payment.paid (basil payments lose their link)",
    )
    args = ap.parse_args(argv)
    if args.visitors < 1:
        ap.error("--visitors must be at least 1")
    if not 0 <= args.old_shape_share <= 1:
        ap.error("--old-shape-share must be between 0 and 1")
    cfg = WorldConfig(
        visitors=args.visitors,
        seed=args.seed,
        api_version=args.api_version,
        old_shape_share=args.old_shape_share,
        invoice_payment_events=not args.no_invoice_payment_events,
    )
    if args.end_date:
        try:
            cfg.end_date = date.today() if args.end_date == "today" else date.fromisoformat(args.end_date)
        except ValueError:
            ap.error(f"--end-date must be YYYY-MM-DD or 'today', not {args.end_date!r}")
    try:
        summary = write_world(
            cfg, Path(args.landing_dir), Path(args.truth_path) if args.truth_path else None, replace=args.replace
        )
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"simulated {summary['visitors']} visitors (seed {summary['seed']}): "
        f"{summary['tracking_events']} tracking events, {summary['stripe_events']} Stripe events, "
        f"{summary['purchases']} purchases; ground truth in {summary['truth_path']}"
    )
    return 0
