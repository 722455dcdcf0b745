"""Correctness checks run after each timed workload; a failure fails the case loudly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.documents import Document

from .context import BenchContext
from .data import UPDATED_PREFIX, doc_key, key_from_content


class CheckFailure(AssertionError):
    """A contender returned or stored wrong data."""


@dataclass(frozen=True)
class CollectionView:
    """How the checker reads a contender's collection."""

    name: str
    key_filter: Callable[[Sequence[str]], str]
    text_field: str = "text"


@dataclass
class CheckReport:
    """What the checks saw."""

    rows_after: int | None = None
    recall: float | None = None
    passed: list[str] = field(default_factory=list)


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailure(message)


def doc_identifier(doc: Document) -> Any:
    """A search result's id: ``Document.id``, else langchain-milvus's ``metadata["pk"]``."""
    return doc.id if doc.id is not None else doc.metadata.get("pk")


def check_count(ctx: BenchContext, view: CollectionView, expected: int, what: str) -> int:
    rows = ctx.count(view.name)
    expect(rows == expected, f"{what}: collection has {rows} rows, expected {expected}")
    return rows


def check_case(
    ctx: BenchContext,
    view: CollectionView,
    workload: str,
    n: int,
    outputs: Sequence[Any],
    rows_before: int,
) -> CheckReport:
    """Dispatch to the workload's checks. Raises :class:`CheckFailure`."""
    expect(len(outputs) == n, f"{len(outputs)} results for {n} operations")
    if workload == "add":
        return _check_add(ctx, view, n, outputs, rows_before)
    if workload in ("search", "mmr"):
        return _check_search(ctx, view, n, outputs, rows_before, mmr=workload == "mmr")
    if workload == "delete":
        return _check_delete(ctx, view, n, outputs, rows_before)
    if workload == "upsert":
        return _check_upsert(ctx, view, n, rows_before)
    raise ValueError(f"unknown workload {workload!r}")


def _check_add(
    ctx: BenchContext, view: CollectionView, n: int, outputs: Sequence[Any], rows_before: int
) -> CheckReport:
    report = CheckReport()
    ids: list[Any] = []
    for i, out in enumerate(outputs):
        expect(
            isinstance(out, list) and len(out) == 1 and out[0] is not None,
            f"add #{i} returned {out!r}, expected a list with one id",
        )
        ids.append(out[0])
    expect(len({str(x) for x in ids}) == n, f"add returned {n - len(set(ids))} duplicate ids")
    report.passed.append(f"{n} distinct ids returned")
    report.rows_after = check_count(ctx, view, rows_before + n, "after add")
    keys = [doc_key(i) for i in range(n)]
    stored = ctx.count_keys(view.name, view.key_filter, keys)
    expect(stored == n, f"after add: {stored} rows carry the added metadata ids, expected {n}")
    report.passed.append(f"row count {report.rows_after} = {rows_before} + {n}")
    return report


def _check_search(
    ctx: BenchContext,
    view: CollectionView,
    n: int,
    outputs: Sequence[Any],
    rows_before: int,
    *,
    mmr: bool,
) -> CheckReport:
    report = CheckReport(rows_after=rows_before)
    k = ctx.config.k
    what = "mmr" if mmr else "search"
    returned: list[list[str]] = []
    for i, docs in enumerate(outputs):
        expect(isinstance(docs, list), f"{what} #{i} returned {type(docs).__name__}, not a list")
        expect(len(docs) == k, f"{what} #{i} returned {len(docs)} documents, expected k={k}")
        keys = []
        for doc in docs:
            expect(isinstance(doc, Document), f"{what} #{i} returned a {type(doc).__name__}")
            _check_document(ctx, doc, f"{what} #{i}")
            keys.append(str(doc.metadata["id"]))
        expect(len(set(keys)) == len(keys), f"{what} #{i} returned duplicates {keys}")
        returned.append(keys)
    report.passed.append(f"{n} x {k} known documents with ids")
    if not mmr:
        report.recall = _recall(ctx, view, returned)
        if report.recall is not None:
            expect(
                report.recall >= ctx.config.min_recall,
                f"mean recall@{k} {report.recall:.3f} < {ctx.config.min_recall} "
                "(results are not the nearest neighbours)",
            )
            report.passed.append(f"recall@{k} {report.recall:.3f}")
    return report


def _check_document(ctx: BenchContext, doc: Document, what: str) -> None:
    key = key_from_content(doc.page_content)
    meta_key = doc.metadata.get("id")
    expect(key is not None, f"{what}: unknown page_content {doc.page_content[:60]!r}")
    expect(meta_key == key, f"{what}: page_content of {key} carries metadata id {meta_key!r}")
    original = ctx.prefill_by_key.get(str(key))
    expect(original is not None, f"{what}: {key} was never written")
    assert original is not None
    expect(
        doc.page_content == original.page_content,
        f"{what}: {key} content {doc.page_content!r} != stored {original.page_content!r}",
    )
    expect(
        doc.metadata.get("category") == original.metadata["category"],
        f"{what}: {key} metadata {doc.metadata!r} != {original.metadata!r}",
    )
    expect(doc_identifier(doc) is not None, f"{what}: {key} came back without an id")


def _recall(ctx: BenchContext, view: CollectionView, returned: list[list[str]]) -> float | None:
    metric = ctx.metric(view.name)
    if metric is None:
        return None
    hits = 0
    for i, keys in enumerate(returned):
        truth = ctx.exact_top_k(ctx.query(i), metric)
        if truth is None:
            return None
        hits += len(set(truth).intersection(keys))
    return hits / (len(returned) * ctx.config.k)


def _check_delete(
    ctx: BenchContext, view: CollectionView, n: int, outputs: Sequence[Any], rows_before: int
) -> CheckReport:
    report = CheckReport()
    failed = [i for i, out in enumerate(outputs) if out is False]
    expect(not failed, f"{len(failed)} deletes reported failure (first: #{failed[:1]})")
    report.rows_after = check_count(ctx, view, rows_before - n, "after delete")
    left = ctx.count_keys(view.name, view.key_filter, [doc_key(i) for i in range(n)])
    expect(left == 0, f"after delete: {left} deleted metadata ids still present")
    report.passed.append(f"row count {report.rows_after} = {rows_before} - {n}")
    return report


def _check_upsert(ctx: BenchContext, view: CollectionView, n: int, rows_before: int) -> CheckReport:
    report = CheckReport()
    report.rows_after = check_count(ctx, view, rows_before, "after upsert (no new rows)")
    updated = ctx.count(view.name, f'{view.text_field} like "{UPDATED_PREFIX}%"')
    expect(updated == n, f"after upsert: {updated} rows carry the new content, expected {n}")
    keys = [doc_key(i) for i in range(n)]
    same_keys = ctx.count_keys(view.name, view.key_filter, keys)
    expect(same_keys == n, f"after upsert: {same_keys} rows for the {n} upserted metadata ids")
    report.passed.append(f"{n} rows replaced in place, row count {report.rows_after}")
    return report
