"""What the derived views catch beside whole-photo PDQ, and what they match that they should not.

Run: ``.venv/bin/python -m tests.benchmarks.derivative_limits [--quick]`` (``make limits``).
Real photographs (tests/photos.py, downloaded once from pinned packages) and generated
photo-like images are registered as a person's device registers them: the 8 dihedral hashes and
``registry.derivatives.registered_views``. Each edit of the table is applied to each registered
photo, the result hashed as a partner hashes an upload (``query_views``: its own hash first,
then the derived views), and decided by ``registry.derivatives.decide`` over every pair of a
query hash and a registered hash within 31 bits. "Whole-photo PDQ" is what the registry matches
today: the upload's own hash within 31 bits of a dihedral hash.

False matches are counted on over 2,000 distractors, none an edit of a registered photo: the
other photos, edits of them, generated images, near-identical scenes, rooms with other people in
them, and photos that share a caption or a logo with registered photos or their edited copies;
every registered photo against every distractor, every hash against every hash. The edits of
one registered photo are also checked against every other registered photo.

Progress goes to stderr, the Markdown to stdout and, with the default sample, into
docs/limits.md between its markers (``--no-docs`` leaves the file alone).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import cv2
import numpy as np
import pdqhash
from numpy.typing import NDArray

from registry import derivatives
from registry.derivatives import REFRAMED, REGIONS, WHOLE
from registry.pdq import MATCH_DISTANCE
from tests.benchmarks import derivative_matching as matching
from tests.benchmarks import derivative_sets as sets
from tests.benchmarks.docs_block import docs_block_write
from tests.photos import Photo, PhotosUnavailable
from tests.photos import load as load_photos

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "limits.md"
BEGIN = "<!-- derivative-limits: begin (written by make limits) -->"
END = "<!-- derivative-limits: end -->"
RECALL_HEADER = (
    "| edit | whole-photo PDQ | with derived views | matched as whole / reframed / regions |"
)
FALSE_HEADER = (
    "| distractors | images | decisions | PDQ already matches | new false matches | "
    "closest whole | closest reframed | closest regions |"
)
COST_HEADER = "| cost | mean | max | goal |"
CROSS = "edits of another registered photo"
TOTAL = "all distractors"
GOAL_REGISTERED, GOAL_QUERY = 96, 64
COSTS = (
    "hashes registered per photo (8 dihedral + derived)",
    "hashes per query (its own + derived)",
    "time per registration (dihedral + derived), ms",
    "time per query (derived views of an upload), ms",
)

_renderer: sets.Renderer | None = None


def _start(photos: dict[str, Photo], max_side: int | None) -> None:
    global _renderer
    _renderer = sets.Renderer(photos, max_side)


def _register(spec: sets.Spec) -> tuple[matching.Hashes, float]:
    assert _renderer is not None
    rgb = _renderer.render(spec)
    began = time.process_time()
    vectors, _ = pdqhash.compute_dihedral(rgb)
    dihedral = [np.packbits(np.asarray(vector, np.uint8)).tobytes() for vector in vectors]
    derived = derivatives.registered_views(rgb)
    return matching.registered_hashes(dihedral, derived), time.process_time() - began


def _query(spec: sets.Spec) -> tuple[matching.Hashes, float]:
    assert _renderer is not None
    rgb = _renderer.render(spec)
    began = time.process_time()
    views = derivatives.query_views(rgb)
    return [(item.view, item.value) for item in views], time.process_time() - began


Task = Callable[[sets.Spec], tuple[matching.Hashes, float]]


@dataclass(frozen=True, slots=True)
class Hashed:
    hashes: list[matching.Hashes]
    seconds: list[float]


def _run(
    pool: multiprocessing.pool.Pool, task: Task, specs: Sequence[sets.Spec], what: str
) -> Hashed:
    hashes: list[matching.Hashes] = []
    seconds: list[float] = []
    began = time.monotonic()
    for index, (found, spent) in enumerate(pool.imap(task, specs, chunksize=2), start=1):
        hashes.append(found)
        seconds.append(spent)
        if index % 200 == 0 or index == len(specs):
            print(
                f"  {what}: {index}/{len(specs)} ({time.monotonic() - began:.0f} s)",
                file=sys.stderr,
            )
    return Hashed(hashes, seconds)


def _share(count: int, total: int) -> str:
    return f"{count / total:.0%}" if total else "-"


def _closest(values: np.ndarray) -> str:
    return str(int(values.min())) if values.size and int(values.min()) < matching.FAR else "-"


def recall_rows(
    plan: sets.Plan, recall: matching.Outcome, specs: list[tuple[int, str]]
) -> list[str]:
    rows = []
    for edit in sets.EDIT_NAMES:
        indices = [index for index, (_, name) in enumerate(specs) if name == edit]
        whole = kinds = 0
        by_kind: Counter[str] = Counter()
        for index in indices:
            photo = specs[index][0]
            whole += int(recall.margins.whole[index, photo] <= MATCH_DISTANCE)
            decision = recall.decisions.get((index, photo))
            if decision is not None:
                kinds += 1
                by_kind[decision.kind] += 1
        split = " / ".join(str(by_kind[kind]) for kind in (WHOLE, REFRAMED, REGIONS))
        rows.append(
            f"| {edit.rstrip('*')} | {_share(whole, len(indices))} | "
            f"{_share(kinds, len(indices))} | {split} |"
        )
    return rows


@dataclass(frozen=True, slots=True)
class Found:
    registered: str
    source: str  # the distractor's base photo or scene
    version: str  # how that base was edited
    decision: derivatives.Decision
    whole: int
    pair: tuple[str, str, int]


def _summary(
    name: str,
    selected: NDArray[np.intp],
    outcome: matching.Outcome,
    exclude: NDArray[np.bool_] | None,
    registered: Sequence[sets.Spec],
    queries: Sequence[sets.Spec],
) -> tuple[str, list[Found], list[Found]]:
    """A row of the false-match table over the query images ``selected`` (indices), and the
    matches found there: those PDQ already makes, and the new ones."""
    margins = outcome.margins
    allowed = np.ones((len(selected), len(registered)), bool)
    if exclude is not None:
        allowed &= ~exclude[selected]
    matched = np.zeros_like(allowed)
    already: list[Found] = []
    new: list[Found] = []
    position = {int(image): row for row, image in enumerate(selected)}
    for (image, photo), decision in outcome.decisions.items():
        at = position.get(image)
        if at is None or not allowed[at, photo]:
            continue
        matched[at, photo] = True
        whole = int(margins.whole[image, photo])
        query = queries[image]
        version = query.label.removeprefix(query.source).removeprefix(": ") or "as it is"
        pair = outcome.closest[image, photo]
        found = Found(registered[photo].label, query.source, version, decision, whole, pair)
        (already if whole <= MATCH_DISTANCE else new).append(found)
    open_pairs = allowed & ~matched
    cells = [
        margins.whole[selected][open_pairs],
        margins.frame[selected][open_pairs],
        margins.regions[selected][open_pairs],
    ]
    by_kind = Counter(item.decision.kind for item in new)
    new_text = (
        f"{len(new)}"
        if not new
        else f"{len(new)} ({by_kind[REFRAMED]} reframed, {by_kind[REGIONS]} regions)"
    )
    row = (
        f"| {name} | {len(selected):,} | {int(allowed.sum()):,} | {len(already)} | {new_text} | "
        f"{' | '.join(_closest(values) for values in cells)} |"
    )
    return row, already, new


def _listing(title: str, found: list[Found], shown: int = 4) -> list[str]:
    """One line per registered photo and distractor source, its closest versions first."""
    if not found:
        return [f"{title}: none."]
    groups: dict[tuple[str, str], list[Found]] = {}
    for item in sorted(found, key=lambda item: (item.decision.distance, item.whole)):
        groups.setdefault((item.registered, item.source), []).append(item)
    lines = [f"{title} ({len(found)}, {len(groups)} pairs of photo and source):", ""]
    for (registered, source), items in sorted(groups.items(), key=lambda group: -len(group[1])):
        versions = []
        for item in items[:shown]:
            query_view, registered_view, distance = item.pair
            how = f"{item.decision.kind}, {query_view} ~ {registered_view} at {distance} bits"
            if item.decision.kind == REGIONS:
                how += f", {item.decision.regions} masks"
            versions.append(f"{item.version} ({how}; own hashes {item.whole} apart)")
        more = f"; and {len(items) - shown} more" if len(items) > shown else ""
        lines.append(f"- {registered} ~ {source}, {len(items)}: {'; '.join(versions)}{more}")
    return lines


def _cost_row(name: str, values: Sequence[float], goal: str, digits: int = 1) -> str:
    return f"| {name} | {np.mean(values):.{digits}f} | {max(values):.{digits}f} | {goal} |"


def _registered_summary(plan: sets.Plan, corpus: int, max_side: int | None) -> str:
    def count(specs: list[sets.Spec], *kinds: str) -> int:
        return sum(spec.base[0] in kinds for spec in specs)

    return (
        f"{len(plan.registered)} photos registered ({count(plan.registered, 'photo')} real of the "
        f"{corpus} in the corpus, {count(plan.registered, 'generated')} generated, "
        f"{count(plan.registered, 'logo')} carrying a logo, {count(plan.registered, 'caption')} "
        f"a caption, {count(plan.registered, 'room')} rooms with people); the edits measured on "
        f"{len(plan.measured)} of them ({count(plan.measured, 'photo')} real, "
        f"{count(plan.measured, 'generated')} generated)"
        + (f", every photo shrunk to {max_side} px" if max_side else "")
        + f". A match is {MATCH_DISTANCE} bits or less."
    )


def measure(arguments: argparse.Namespace) -> list[str]:
    corpus = load_photos()
    began = time.monotonic()
    plan = sets.plan(
        [photo.name for photo in corpus.photos],
        photos=arguments.photos,
        generated=arguments.generated,
        distractor_generated=arguments.distractor_generated,
        quick=arguments.quick,
    )
    recall_specs: list[tuple[int, str]] = []
    queries: list[sets.Spec] = []
    for photo, spec in enumerate(plan.measured):
        for number, edit in enumerate(sets.EDIT_NAMES):
            donor = plan.donors[(photo + number) % len(plan.donors)] if edit.endswith("*") else None
            recall_specs.append((photo, edit))
            queries.append(sets.Spec(spec.base, edit, donor, source=spec.label))
    context = multiprocessing.get_context("fork")
    with context.Pool(arguments.processes, _start, (corpus.by_name(), arguments.max_side)) as pool:
        registered = _run(pool, _register, plan.registered, "registered")
        recall = _run(pool, _query, queries, "edits of registered photos")
        distractors = _run(pool, _query, plan.distractors, "distractors")
    registered_side = matching.Side.of(registered.hashes)
    recall_outcome = matching.compare(matching.Side.of(recall.hashes), registered_side)
    distractor_outcome = matching.compare(matching.Side.of(distractors.hashes), registered_side)
    elapsed = time.monotonic() - began

    lines = [
        _registered_summary(plan, len(corpus.photos), arguments.max_side),
        "",
        RECALL_HEADER,
        "|---|---:|---:|---:|",
        *recall_rows(plan, recall_outcome, recall_specs),
        "",
        f"{len(plan.distractors):,} distractors, each against each of the {len(plan.registered)} "
        'registered photos (a decision); "PDQ already matches": the upload\'s own hash is '
        f"within {MATCH_DISTANCE} bits of a dihedral hash, as the registry matches today; "
        '"closest": the smallest distance among the decisions that did not match (whole: own '
        "hash to a dihedral hash; reframed: any full-frame view pair; regions: the second-best "
        "same-mask pair, as two are needed).",
        "",
        FALSE_HEADER,
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    kinds = np.array([spec.kind for spec in plan.distractors])
    all_already: list[Found] = []
    all_new: list[Found] = []
    for kind in sets.KINDS:
        selected = np.flatnonzero(kinds == kind)
        row, already, new = _summary(
            kind, selected, distractor_outcome, None, plan.registered, plan.distractors
        )
        lines.append(row)
        all_already += already
        all_new += new
    everything = np.arange(len(kinds))
    row, _, _ = _summary(
        TOTAL, everything, distractor_outcome, None, plan.registered, plan.distractors
    )
    lines.append(row.replace(f"| {TOTAL} |", f"| **{TOTAL}** |"))
    own = np.zeros((len(queries), len(plan.registered)), bool)
    for index, (photo, _) in enumerate(recall_specs):
        own[index, photo] = True
    row, cross_already, cross_new = _summary(
        CROSS, np.arange(len(queries)), recall_outcome, own, plan.registered, queries
    )
    lines.append(row)
    lines += ["", *_listing("PDQ already matches (near-duplicates)", all_already + cross_already)]
    lines += ["", *_listing("New false matches, from the derived views", all_new + cross_new)]
    registered_counts = [len(hashes) for hashes in registered.hashes]
    query_counts = [len(hashes) for hashes in recall.hashes + distractors.hashes]
    query_seconds = [1000 * value for value in recall.seconds + distractors.seconds]
    lines += [
        "",
        COST_HEADER,
        "|---|---:|---:|---:|",
        _cost_row(COSTS[0], registered_counts, f"≤ {GOAL_REGISTERED}"),
        _cost_row(COSTS[1], query_counts, f"≤ {GOAL_QUERY}"),
        _cost_row(COSTS[2], [1000 * value for value in registered.seconds], "", 0),
        _cost_row(COSTS[3], query_seconds, "", 0),
        "",
        f"({len(queries) + len(plan.distractors):,} queries and {len(plan.registered)} "
        f"registrations in {elapsed / 60:.1f} min on {arguments.processes} processes, "
        f"{os.cpu_count()} cores; pdqhash {version('pdqhash')}, numpy {np.__version__}, "
        f"Pillow {version('pillow')}, OpenCV {cv2.__version__}.)",
    ]
    return lines


def write_docs(lines: Sequence[str], path: Path = DOCS) -> None:
    docs_block_write(path, begin=BEGIN, end=END, lines=lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small sample (2 photos, ~70 distractors, 256 px): seconds",
    )
    parser.add_argument(
        "--photos",
        type=int,
        default=sets.MEASURED,
        help="real photos the edits are measured on (all the benchmark's are registered)",
    )
    parser.add_argument("--generated", type=int, default=4, help="generated photos registered")
    parser.add_argument(
        "--distractor-generated",
        type=int,
        default=520,
        help="generated distractors (half of them edited too)",
    )
    parser.add_argument(
        "--max-side", type=int, default=None, help="shrink every photo to this longest side first"
    )
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--no-docs", action="store_true", help="leave docs/limits.md alone")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.photos, arguments.generated = 1, 1
        arguments.distractor_generated = 8
        arguments.max_side = arguments.max_side or 256
    try:
        lines = measure(arguments)
    except PhotosUnavailable as error:
        print(
            f"derivative limits: skipped, the photo corpus is unavailable: {error}", file=sys.stderr
        )
        return 2
    print("\n".join(lines))
    sample = ("quick", "photos", "generated", "distractor_generated", "max_side")
    defaults = all(getattr(arguments, key) == parser.get_default(key) for key in sample)
    if defaults and not arguments.no_docs:
        write_docs(lines)
        print(f"(written into {DOCS.relative_to(ROOT)})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
