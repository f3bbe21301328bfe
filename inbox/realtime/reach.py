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
        self.by_user: dict[int, list[Connection]] = {}
        # G and M: connections by their user's circle (``Subject.members``: everyone they share a group
        # with, and themselves), and, for each user, the circles that include them. Indexed by circle
        # rather than by member, because people in one team share one circle: this costs one entry per
        # connection instead of one per connection and team-mate.
        self.by_circle: dict[frozenset[int], set[Connection]] = {}
        self.circles_of: dict[int, list[frozenset[int]]] = {}
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
        self.by_user.setdefault(conn.user_id, []).append(conn)
        circle = self.by_circle.get(subject.members)
        if circle is None:
            circle = self.by_circle[subject.members] = set()
            for member in subject.members:
                self.circles_of.setdefault(member, []).append(subject.members)
        circle.add(conn)
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
        mine = self.by_user.get(conn.user_id)
        if mine is not None and conn in mine:
            mine.remove(conn)
            if not mine:
                del self.by_user[conn.user_id]
        members = conn.subject.members
        circle = self.by_circle.get(members)
        if circle is not None:
            circle.discard(conn)
            if not circle:
                del self.by_circle[members]
                for member in members:
                    circles = self.circles_of[member]
                    circles.remove(members)
                    if not circles:
                        del self.circles_of[member]
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
                out.update(conns)

    def _responsible(self, out: set[Connection], user_id: int | None) -> None:
        for circle in self.circles_of.get(user_id, ()):  # type: ignore[arg-type]
            out |= self.by_circle[circle]

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
        elif kind in ("message.created", "message.status", "conversation.updated"):
            self._lead(out, data.get("lead"), data.get("subscribers", ()))
            out |= self.broad["contacts"]
            self._responsible(out, data["contact"]["responsible_user_id"])
        elif kind.split(".")[0] in PARTIES:
            out |= self.broad[PARTIES[kind.split(".")[0]]]
            self._responsible(out, data["record"]["responsible_user_id"])
        elif kind in ("email.created", "email.status", "thread.updated"):
            out |= self.admins
            self._users(out, data["members"])
        elif kind == "notification.created":
            self._users(out, (data["user_id"],))
        elif kind.startswith("task."):
            # Rule 10 joins the task's owner, the task level and the attached record's own rule; task
            # events are few, so every connection is asked (auth.access.task_visible decides).
            return set(self.everyone)
        else:
            return set(self.everyone)
        return out

