"""Run a compiled visibility (auth/visibility.py) as a page, a count or a stream of rows.

Pages are newest first (``id DESC``) and keyset-paged: ``before`` is the last id of the previous
page. Each slice is read as its own index range with ``LIMIT``, and the union of those short lists is
merged, so a page 200 pages deep costs what the first costs and invisible rows never leave SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator

from auth.visibility import MAX_SLICES, Visibility

from . import plans
from .db import Database

TABLES = frozenset({"leads", "contacts", "companies", "tasks"})


@dataclass(frozen=True)
class Filter:
    """Extra conditions that are not about permissions (search, dates). Columns are ours, values bound."""

    terms: tuple[str, ...] = ()        # each with a '{p}' placeholder for the table prefix
    params: tuple = ()

    def sql(self, prefix: str = "") -> str:
        return " AND ".join(t.format(p=prefix) for t in self.terms) or "1"


def _branches(table: str, vis: Visibility, flt: Filter, before: int | None, n: int) -> tuple[list[str], list]:
    cursor = " AND {p}id < ?" if before is not None else ""
    sqls, params = [], []
    for s in vis.slices:
        where, p = plans.slice_where(s)
        sqls.append(f"SELECT id FROM (SELECT id FROM {table} WHERE {where} AND {flt.sql()}"
                    f"{cursor.format(p='')} ORDER BY id DESC LIMIT ?)")
        params += [*p, *flt.params, *([before] if before is not None else []), n]
    if vis.subscriber is not None and not vis.everything:
        sqls.append("SELECT id FROM (SELECT ls.lead_id AS id FROM lead_subscribers ls"
                    f" JOIN leads l ON l.id = ls.lead_id WHERE ls.user_id = ? AND {flt.sql('l.')}"
                    f"{cursor.format(p='ls.lead_')} ORDER BY ls.lead_id DESC LIMIT ?)")
        params += [vis.subscriber, *flt.params, *([before] if before is not None else []), n]
    return sqls, params


def page_query(table: str, vis: Visibility, flt: Filter, *, before: int | None, limit: int,
               offset: int = 0) -> tuple[str, list]:
    """The SQL for one page of visible rows (exposed so tests and docs can read its plan)."""
    assert table in TABLES
    if len(vis.slices) <= MAX_SLICES:
        sqls, params = _branches(table, vis, flt, before, limit + offset)
        merged = " UNION ".join(sqls)
        return (f"SELECT t.* FROM ({merged} ORDER BY 1 DESC LIMIT ? OFFSET ?) AS v"
                f" JOIN {table} t ON t.id = v.id ORDER BY t.id DESC", [*params, limit, offset])
    # Too many slices for one UNION: walk the primary key newest first, skipping invisible rows inside
    # SQLite. NOT INDEXED, because left to itself the planner turns the OR into a MULTI-INDEX OR that
    # collects and sorts every visible row.
    where, params = plans.where(vis)
    cursor = " AND id < ?" if before is not None else ""
    return (f"SELECT * FROM {table} NOT INDEXED WHERE {where} AND {flt.sql()}{cursor} ORDER BY id DESC"
            " LIMIT ? OFFSET ?",
            [*params, *flt.params, *([before] if before is not None else []), limit, offset])


async def page(db: Database, table: str, vis: Visibility, flt: Filter, *, before: int | None, limit: int,
               offset: int = 0) -> list:
    if vis.nothing:
        return []
    sql, params = page_query(table, vis, flt, before=before, limit=limit, offset=offset)
    return await db.fetchall(sql, params)


def count_query(table: str, vis: Visibility, flt: Filter) -> tuple[str, list]:
    assert table in TABLES
    if table == "leads" and not flt.terms:
        # Unfiltered lead totals come from the per-cell counters (migration 0004): a sum over a
        # table of stages x users, plus the subscriptions the rules do not already cover.
        rule, params = plans.rule_where(vis)
        sql = f"SELECT (SELECT coalesce(sum(n), 0) FROM lead_counts WHERE {rule})"
        if vis.subscriber is not None and not vis.everything:
            sub_rule, sub_params = plans.rule_where(vis, "ls.")
            sql += f" + (SELECT count(*) FROM lead_subscribers ls WHERE ls.user_id = ? AND NOT {sub_rule})"
            params = [*params, vis.subscriber, *sub_params]
        return sql, params
    if vis.everything:
        # No WHERE at all when nothing filters: SQLite then counts b-tree pages, not rows.
        where = f" WHERE {flt.sql()}" if flt.terms else ""
        return f"SELECT count(*) FROM {table}{where}", list(flt.params)
    if len(vis.slices) > MAX_SLICES:
        where, params = plans.where(vis)
        return f"SELECT count(*) FROM {table} WHERE {where} AND {flt.sql()}", [*params, *flt.params]
    # The slices are disjoint, so their counts add up; each is an index range count.
    terms, params = [], []
    for s in vis.slices:
        where, p = plans.slice_where(s)
        terms.append(f"(SELECT count(*) FROM {table} WHERE {where} AND {flt.sql()})")
        params += [*p, *flt.params]
    if vis.subscriber is not None:
        rule, p = plans.rule_where(vis, "l.")
        terms.append("(SELECT count(*) FROM lead_subscribers ls JOIN leads l ON l.id = ls.lead_id"
                     f" WHERE ls.user_id = ? AND {flt.sql('l.')} AND NOT {rule})")
        params += [vis.subscriber, *flt.params, *p]
    return "SELECT " + (" + ".join(terms) or "0"), params


async def count(db: Database, table: str, vis: Visibility, flt: Filter) -> int:
    if vis.nothing:
        return 0
    sql, params = count_query(table, vis, flt)
    return await db.fetchval(sql, params)


async def stream(db: Database, table: str, vis: Visibility, flt: Filter, *, chunk: int = 500) -> AsyncIterator[list]:
    """Every visible row, newest first, a chunk at a time (for exports)."""
    before = None
    while True:
        rows = await page(db, table, vis, flt, before=before, limit=chunk)
        if not rows:
            return
        yield rows
        if len(rows) < chunk:
            return
        before = rows[-1]["id"]


async def page_where(db: Database, table: str, where: tuple[str, list], flt: Filter, *, before: int | None,
                     limit: int, offset: int = 0) -> list:
    """A page under a plain predicate (tasks, whose visibility joins other tables)."""
    assert table in TABLES
    cursor = " AND id < ?" if before is not None else ""
    return await db.fetchall(
        f"SELECT * FROM {table} WHERE {where[0]} AND {flt.sql()}{cursor} ORDER BY id DESC LIMIT ? OFFSET ?",
        [*where[1], *flt.params, *([before] if before is not None else []), limit, offset])


async def count_where(db: Database, table: str, where: tuple[str, list], flt: Filter) -> int:
    assert table in TABLES
    return await db.fetchval(f"SELECT count(*) FROM {table} WHERE {where[0]} AND {flt.sql()}",
                             [*where[1], *flt.params])
