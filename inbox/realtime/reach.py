"""Which live connections could see an event, so the hub asks the permission core only about them.

Examining every connection for every event costs O(connections) per event however few may see it
(measured: 1.7-2 ms per event at 1,000 sockets). Visibility has a shape that an index can follow: a
record is seen through level ``A`` (everyone whose rights give ``A`` there), ``G`` (users who share
a group with the responsible user), ``M`` (the responsible user), a subscription, an inbox
membership or an addressee. ``candidates`` returns the union of those groups: a superset of the
readers, never a subset. It decides nothing; ``views.view`` still decides each candidate, so a
wrong guess here can cost time but cannot leak. Event types it does not know reach everyone.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from auth.rights import A

from .connection import Connection

PARTIES = {"contact": "contacts", "company": "companies"}


class Reach:
    def __init__(self) -> None:
        self.everyone: set[Connection] = set()
        self.admins: set[Connection] = set()
        self.by_user: dict[int, set[Connection]] = {}
        # responsible user -> connections whose user shares a group with them (or is them): G and M.
        self.by_member: dict[int, set[Connection]] = {}
        # entity -> connections whose view level for it is A.
        self.broad: dict[str, set[Connection]] = {"contacts": set(), "companies": set()}
        # (pipeline, stage) -> connections whose lead view level there is A; filled on first use.
        self.broad_stage: dict[tuple[int, int], set[Connection]] = {}

    def __len__(self) -> int:
        return len(self.everyone)

    def add(self, conn: Connection) -> None:
        subject = conn.subject
        self.everyone.add(conn)
        if subject.is_admin:
            self.admins.add(conn)
        self.by_user.setdefault(conn.user_id, set()).add(conn)
        for member in subject.members:
            self.by_member.setdefault(member, set()).add(conn)
        for entity, conns in self.broad.items():
            if subject.entity_level(entity, "view") == A:
                conns.add(conn)
        for key, conns in self.broad_stage.items():
            if subject.lead_levels(*key)[0] == A:
                conns.add(conn)

    def remove(self, conn: Connection) -> None:
        """Forget ``conn`` under the subject it was added with (call before replacing the subject)."""
        self.everyone.discard(conn)
        self.admins.discard(conn)
        _discard(self.by_user, conn.user_id, conn)
        for member in conn.subject.members:
            _discard(self.by_member, member, conn)
        for conns in self.broad.values():
            conns.discard(conn)
        for conns in self.broad_stage.values():
            conns.discard(conn)

    def _stage(self, pipeline_id: int, stage_id: int) -> set[Connection]:
        key = (pipeline_id, stage_id)
        conns = self.broad_stage.get(key)
        if conns is None:
            conns = {c for c in self.everyone if c.subject.lead_levels(pipeline_id, stage_id)[0] == A}
            self.broad_stage[key] = conns
        return conns

    def _users(self, out: set[Connection], user_ids: Iterable[int]) -> None:
        for uid in user_ids:
            conns = self.by_user.get(uid)
            if conns:
                out |= conns

    def _responsible(self, out: set[Connection], user_id: int | None) -> None:
        conns = self.by_member.get(user_id)  # type: ignore[arg-type]
        if conns:
            out |= conns

    def _lead(self, out: set[Connection], cell: Mapping[str, Any] | None, subscribers: Iterable[int]) -> None:
        if cell:
            out |= self._stage(cell["pipeline_id"], cell["stage_id"])
            self._responsible(out, cell["responsible_user_id"])
        self._users(out, subscribers)

    def candidates(self, kind: str, data: Mapping[str, Any]) -> set[Connection]:
        out: set[Connection] = set()
        if kind.startswith("lead.") or kind == "subscription.changed":
            self._lead(out, data.get("lead"), data.get("subscribers", ()))
            self._lead(out, data.get("before"), data.get("subscribers_before", ()))
        elif kind == "message.created":
            self._lead(out, data.get("lead"), data.get("subscribers", ()))
            out |= self.broad["contacts"]
            self._responsible(out, data["contact"]["responsible_user_id"])
        elif kind.split(".")[0] in PARTIES:
            out |= self.broad[PARTIES[kind.split(".")[0]]]
            self._responsible(out, data["record"]["responsible_user_id"])
        elif kind == "email.created":
            out |= self.admins
            self._users(out, data["members"])
        elif kind == "notification.created":
            self._users(out, (data["user_id"],))
        else:
            return set(self.everyone)
        return out


def _discard(index: dict[int, set[Connection]], key: int, conn: Connection) -> None:
    conns = index.get(key)
    if conns is not None:
        conns.discard(conn)
        if not conns:
            del index[key]
