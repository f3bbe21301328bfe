"""The hub asks the permission core only about the connections ``Reach`` names for an event. If that
index ever left out a reader, the reader would silently miss a message, so: for random rights,
groups, subscriptions and events, every connection that ``views.view`` (or ``lost_lead``) would
give something to must be among the candidates. And the index must actually narrow, or the hub is
back to asking every connection about every event."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from auth.policy import Subject
from auth.rights import Effective, Rights, Source
from inbox.realtime.connection import Connection
from inbox.realtime.reach import Reach
from inbox.realtime.views import lost_lead, reader_class, view
from inbox.store.events import Event

USERS = range(1, 9)
PIPELINES = (1, 2)
STAGES = (1, 2, 3)
DEFS = {"leads": {}, "contacts": {}, "companies": {}}

level = st.sampled_from("DMGA")
entity = st.fixed_dictionaries({"view": level, "edit": level, "delete": level, "export": level})
rights = st.builds(
    lambda leads, contacts, companies, stages, denied, mail, files: Rights.from_json({
        "leads": leads, "contacts": contacts, "companies": companies, "mail_access": mail, "files_access": files,
        "stage_rights": [{"pipeline_id": p, "stage_id": s, "view": v} for (p, s), v in stages.items()],
        "pipeline_access": {str(p): False for p in denied}}),
    entity, entity, entity,
    st.dictionaries(st.tuples(st.sampled_from(PIPELINES), st.sampled_from(STAGES)), level, max_size=3),
    st.lists(st.sampled_from(PIPELINES), max_size=1), st.booleans(), st.booleans())
responsible = st.one_of(st.none(), st.sampled_from(USERS))
users = st.lists(st.sampled_from(USERS), max_size=3, unique=True)


@st.composite
def cells(draw):
    return {"id": 7, "pipeline_id": draw(st.sampled_from(PIPELINES)), "stage_id": draw(st.sampled_from(STAGES)),
            "responsible_user_id": draw(responsible), "custom": {}, "name": "L"}


@st.composite
def events(draw):
    kind = draw(st.sampled_from(["lead.created", "lead.updated", "lead.deleted", "message.created",
                                 "contact.updated", "company.created", "email.created", "notification.created",
                                 "subscription.changed", "access.changed"]))
    party = {"id": 3, "responsible_user_id": draw(responsible), "custom": {}, "name": "P"}
    if kind.startswith("lead.") or kind == "subscription.changed":
        data = {"lead": draw(cells()), "subscribers": draw(users), "contacts": [party], "company": None}
        if draw(st.booleans()):
            data.update(before=draw(cells()), subscribers_before=draw(users))
        if kind == "subscription.changed":  # delivered (the lead card) to the users it names
            data.update(user_ids=draw(users), subscribed=draw(st.booleans()))
    elif kind == "message.created":
        data = {"lead": draw(st.one_of(st.none(), cells())), "subscribers": draw(users), "contact": party,
                "conversation": {"id": 1, "lead_id": 7}, "message": {}}
    elif kind.startswith(("contact.", "company.")):
        data = {"record": party}
    elif kind == "email.created":
        data = {"members": draw(users), "email": {}}
    elif kind == "notification.created":
        data = {"user_id": draw(st.sampled_from(USERS)), "notification": {}}
    else:
        data = {"user_ids": draw(users)}
    return Event(1, 0.0, kind, data)


@st.composite
def workspaces(draw):
    groups = draw(st.lists(st.frozensets(st.sampled_from(USERS), min_size=1, max_size=4), max_size=3))
    subjects = []
    for uid in USERS:
        members = set().union(*(g for g in groups if uid in g)) if groups else set()
        r = draw(rights)
        subjects.append(Subject(uid, is_admin=draw(st.integers(0, 9)) == 0,
                                effective=Effective(r, (Source("own", r),), ()), members=members))
    return subjects


def readers(subjects: list[Subject], event: Event) -> set[int]:
    return {s.user_id for s in subjects
            if view(s, event, DEFS) is not None or lost_lead(s, event) is not None}


def reach_of(subjects: list[Subject]) -> Reach:
    reach = Reach()
    for s in subjects:
        reach.add(Connection(None, None, s, s.user_id, "127.0.0.1", 1 << 20))
    return reach


@settings(max_examples=400, deadline=None)
@given(workspaces(), st.lists(events(), min_size=1, max_size=4))
def test_every_reader_is_a_candidate(subjects, batch):
    reach = reach_of(subjects)
    for event in batch:  # several events, so the lazily built per-stage sets are reused too
        named = {c.user_id for c in reach.candidates(event.type, event.data)}
        assert readers(subjects, event) <= named, event


@settings(max_examples=100, deadline=None)
@given(workspaces(), events(), st.data())
def test_a_rights_change_moves_the_connection_in_the_index(subjects, event, data):
    reach = reach_of(subjects)
    conn = next(c for c in reach.everyone if c.user_id == 1)
    r = data.draw(rights)
    reach.remove(conn)
    conn.subject = Subject(1, is_admin=False, effective=Effective(r, (Source("own", r),), ()), members={1, 2})
    reach.add(conn)
    subjects = [conn.subject if s.user_id == 1 else s for s in subjects]
    assert readers(subjects, event) <= {c.user_id for c in reach.candidates(event.type, event.data)}


def test_the_index_narrows_to_the_records_people():
    """An M agent's lead concerns that agent and their group, not the other 97 agents."""
    agent = Rights.from_json({"leads": {"view": "M", "edit": "M", "delete": "D", "export": "D"},
                              "contacts": {"view": "M", "edit": "M", "delete": "D", "export": "D"}})
    subjects = [Subject(uid, is_admin=False, effective=Effective(agent, (Source("own", agent),), ()),
                        members={uid, uid + 1 if uid % 2 else uid - 1}) for uid in range(1, 101)]
    reach = reach_of(subjects)
    lead = {"id": 1, "pipeline_id": 1, "stage_id": 1, "responsible_user_id": 5, "custom": {}}
    named = {c.user_id for c in reach.candidates("lead.created", {"lead": lead, "subscribers": [40]})}
    assert named == {5, 6, 40}
    assert readers(subjects, Event(1, 0, "lead.created", {"lead": lead, "subscribers": [40], "contacts": []})) \
        == {5, 40}


@st.composite
def shared_rights_workspaces(draw):
    """Users drawn from a few shared rights (as users of one role share one ``Effective``)."""
    classes = [Effective(r, (Source("role", r, 1),), ()) for r in draw(st.lists(rights, min_size=1, max_size=3))]
    groups = draw(st.lists(st.frozensets(st.sampled_from(USERS), min_size=1, max_size=4), max_size=3))
    return [Subject(uid, is_admin=draw(st.integers(0, 9)) == 0, effective=draw(st.sampled_from(classes)),
                    members=set().union(*(g for g in groups if uid in g)) if groups else ())
            for uid in USERS]


@st.composite
def messages(draw):
    party = {"id": 3, "responsible_user_id": draw(responsible), "custom": {"1": "x", "2": "y"}, "name": "P",
             "avatar": None, "emails": [], "phones": [], "company_id": None, "created_at": 0.0, "updated_at": 0.0}
    message = {"id": 9, "conversation_id": 1, "author_type": "contact", "author_user_id": None, "text": "hi",
               "attachments": draw(st.lists(st.just({"media_id": 1, "type": "image/png", "name": "a.png",
                                                     "size": 3}), max_size=1)),
               "status": "received", "created_at": 0.0}
    return Event(1, 0.0, "message.created", {
        "lead": draw(st.one_of(st.none(), cells())), "subscribers": draw(users), "contact": party,
        "conversation": {"id": 1, "lead_id": 7}, "message": message})


@settings(max_examples=300, deadline=None)
@given(shared_rights_workspaces(), messages())
def test_readers_of_one_class_see_a_message_alike(subjects, event):
    """The hub decides a chat message once per ``reader_class`` and reuses the answer for every
    reader of that class: that is only sound if the class fixes the answer and the payload."""
    defs = {"leads": {}, "contacts": {1: {"id": 1}, 2: {"id": 2}}, "companies": {}}
    seen: dict[tuple, tuple] = {}
    for s in subjects:
        shown = view(s, event, defs)
        answer = None if shown is None else (shown[0], shown[1]())
        first = seen.setdefault(reader_class(s, event), answer)
        assert first == answer, (s.user_id, event)
