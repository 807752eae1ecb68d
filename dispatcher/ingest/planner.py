"""The pure batch planner: raw messages in, a plan of everything to store and send out.

``decode_batch`` and ``plan_batch`` do no I/O. Given the event ids already seen and the stored
contexts of the citizens in the batch, they decide, in message order, what every message becomes:

* an audit row (every accepted event id gets exactly one),
* a context update (every accepted event of any kind: discharges, sensor readings and nurse
  observations all fold into the citizen's bounded history), possibly an escalation,
* or a dead letter with the field and reason (bad input, or a rule that raised),
* or a duplicate (its event id was seen before): nothing new is stored or sent.

The I/O shell (``dispatcher.ingest.processor``) stores the whole plan in one PostgreSQL
transaction, with the outgoing messages in an outbox, so a crash can never leave a
decision half-made.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID, uuid5

import orjson

from dispatcher.contract.events import (
    AuditedEvent,
    DeadLetter,
    DischargeEvent,
    Escalation,
    FieldError,
    InputEvent,
    NurseObservation,
    SensorSilenceCheck,
)
from dispatcher.contract.excerpt import excerpt, redact_cpr
from dispatcher.contract.topics import DEAD_LETTER, DISCHARGES, ESCALATIONS, NURSE_OBSERVATIONS
from dispatcher.contract.vocab import (
    SEVERITY_RANK,
    TIMER_SOURCE,
    WHOLE_MESSAGE,
    DeadLetterCategory,
)
from dispatcher.ingest.decoding import Decoded, decode, key_errors, past_max_age
from dispatcher.rules.assessment import Assessment, evaluate, silent_sensor_check
from dispatcher.rules.context import CitizenContext
from dispatcher.rules.escalation import ESCALATION_NAMESPACE, build_escalation, case_id_for
from dispatcher.rules.first_route import first_route
from dispatcher.rules.recent import RecentObservation, before, remember, with_severity
from dispatcher.rules.ruleset import RuleSet, default_ruleset

# Audit rows of the dispatcher's own timer checks name this pseudo-topic, partition and offset.


@dataclass(frozen=True)
class Incoming:
    """One consumed Kafka message, before decoding."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class OutboxMessage:
    topic: str
    key: bytes | None
    value: bytes
    # Set on a dead letter's message: it is queued only if that dead letter is new.
    dead_letter_id: UUID | None = None


@dataclass(frozen=True)
class Accepted:
    incoming: Incoming
    event: InputEvent


@dataclass(frozen=True)
class AuditRow:
    incoming: Incoming
    event: AuditedEvent
    assessment: Assessment
    outcome: str
    # SHA-256 of the event's content (``content_sha256``): a later event under the same id
    # with other content is a dead letter, not a duplicate. None for the dispatcher's own.
    content_sha256: str | None = None


@dataclass
class BatchPlan:
    audits: list[AuditRow] = field(default_factory=list)
    contexts: dict[str, CitizenContext] = field(default_factory=dict)
    escalations: list[Escalation] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicates: list[Accepted] = field(default_factory=list)

    def outbox(self) -> list[OutboxMessage]:
        out = [
            OutboxMessage(ESCALATIONS, e.citizen_id.encode(), e.model_dump_json().encode())
            for e in self.escalations
        ]
        out.extend(
            OutboxMessage(
                DEAD_LETTER,
                base64.b64decode(d.key_b64) if d.key_b64 else None,
                d.model_dump_json().encode(),
                d.dead_letter_id,
            )
            for d in self.dead_letters
        )
        return out


def dead_letter_id_for(msg: Incoming) -> UUID:
    """Stable id: a replayed message maps to the same dead letter, new bytes to a new one."""
    digest = hashlib.sha256(msg.value or b"").hexdigest()
    return uuid5(ESCALATION_NAMESPACE, f"dlq:{msg.topic}:{msg.partition}:{msg.offset}:{digest}")


def rule_error(exc: Exception) -> FieldError:
    """The error a valid event gets when the rules raised on it (the CLI reports it the same)."""
    return FieldError(field=WHOLE_MESSAGE, reason=f"rule error: {type(exc).__name__}: {exc}")


# A dead letter carries at most this much of the original message and of its key, redacted
# (``contract.excerpt``): an oversized input must not make an oversized output that the broker
# refuses. With at most MAX_DEAD_LETTER_ERRORS errors of bounded text, a dead letter stays far
# below the broker's 1 MB message limit whatever it was sent.
MAX_DEAD_LETTER_ORIGINAL = 64 * 1024
MAX_DEAD_LETTER_KEY = 1024
MAX_DEAD_LETTER_ERRORS = 20
MAX_ERROR_FIELD = 200
MAX_ERROR_REASON = 500


def _bounded(error: FieldError) -> FieldError:
    """An error with its field and reason cut to bounded length and CPR-shaped numbers hidden."""
    field_name = redact_cpr(error.field[:MAX_ERROR_FIELD])
    reason = redact_cpr(error.reason[:MAX_ERROR_REASON])
    if field_name == error.field and reason == error.reason:
        return error
    return FieldError(field=field_name, reason=reason)


def make_dead_letter(
    msg: Incoming,
    errors: list[FieldError],
    now: datetime,
    event_id: UUID | None,
    category: DeadLetterCategory,
) -> DeadLetter:
    value = excerpt(msg.value or b"", MAX_DEAD_LETTER_ORIGINAL)
    key = excerpt(msg.key, MAX_DEAD_LETTER_KEY) if msg.key is not None else None
    kept_errors = [_bounded(e) for e in errors[:MAX_DEAD_LETTER_ERRORS]]
    return DeadLetter(
        dead_letter_id=dead_letter_id_for(msg),
        rejected_at=now,
        source_topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        key_b64=base64.b64encode(key.kept).decode() if key is not None else None,
        key_size=key.size if key is not None else None,
        key_sha256=key.sha256 if key is not None else None,
        key_truncated=key.truncated if key is not None else False,
        key_redacted=key.redacted if key is not None else False,
        original_b64=base64.b64encode(value.kept).decode(),
        original_size=value.size,
        original_sha256=value.sha256,
        original_truncated=value.truncated,
        original_redacted=value.redacted,
        category=category,
        error=kept_errors[0],
        errors=kept_errors,
        event_id=event_id,
    )


# Event ids already stored, with the content hash of the event stored under each (None for
# an audit row written before hashes were kept: it can only be taken for a duplicate).
SeenIds = Mapping[UUID, str | None]


def content_sha256(item: Accepted) -> str:
    """SHA-256 of the event's content: the canonical JSON (sorted keys, no whitespace) of the
    document as sent, parsed.

    Why the parsed document and not the raw bytes: a producer that re-sends an event after
    re-serialising it (other key order, other spacing) sends the same event, which must stay an
    idempotent duplicate. Why not the validated model: its dump changes when our contract
    changes (a new optional field with a default, a rounding), and a replay across a deploy
    would then turn exact duplicates into "reused" ids. Events we make ourselves (timer checks)
    have no bytes: their model's JSON is hashed."""
    raw = item.incoming.value
    if raw:
        try:
            canonical = orjson.dumps(orjson.loads(raw), option=orjson.OPT_SORT_KEYS)
        except orjson.JSONDecodeError:
            canonical = raw
    else:
        canonical = item.event.model_dump_json().encode()
    return hashlib.sha256(canonical).hexdigest()


ID_REUSED_REASON = "event_id reused with different content"


def identity(item: Accepted, claimed: SeenIds, now: datetime) -> str | DeadLetter | None:
    """Issue 11 item 2. ``None``: an exact duplicate of an event already stored or decided in
    this batch (skip it). A dead letter: its event_id was used before for different content
    (another citizen, other values), so it is neither silently skipped nor decided under a
    taken id. Otherwise the new event's content hash (to store with its audit row)."""
    digest = content_sha256(item)
    event_id = item.event.event_id
    if event_id not in claimed:
        return digest
    known = claimed[event_id]
    if known is None or known == digest:
        return None
    return make_dead_letter(
        item.incoming,
        [
            FieldError(
                field="event_id",
                reason=f"{ID_REUSED_REASON}: an event stored under this id has content "
                f"sha256 {known[:12]}..., this one {digest[:12]}...",
            )
        ],
        now,
        event_id,
        DeadLetterCategory.ID_REUSED,
    )


def claimed_ids(seen: SeenIds | AbstractSet[UUID]) -> dict[UUID, str | None]:
    """The seen ids as id -> hash (a plain set, from a caller without hashes: all unknown)."""
    if isinstance(seen, Mapping):
        return dict(seen)
    return dict.fromkeys(seen)


def decode_batch(
    messages: Sequence[Incoming], now: datetime
) -> tuple[list[Accepted], list[DeadLetter]]:
    accepted: list[Accepted] = []
    dead: list[DeadLetter] = []
    for msg in messages:
        result = decode(msg.topic, msg.value, now)
        if isinstance(result, Decoded):
            wrong_key = key_errors(msg.key, result.event)  # key == citizen_id (issue 11 item 5)
            if wrong_key:
                dead.append(
                    make_dead_letter(
                        msg, wrong_key, now, result.event.event_id, DeadLetterCategory.VALIDATION
                    )
                )
            else:
                accepted.append(Accepted(msg, result.event))
        else:
            dead.append(make_dead_letter(msg, result.errors, now, result.event_id, result.category))
    return accepted, dead


def _outcome(event: InputEvent, assessment: Assessment) -> str:
    if assessment.escalate:
        return "escalated"
    if isinstance(event, DischargeEvent):
        return "context_updated"
    return "assessed"


def plan_batch(
    accepted: Sequence[Accepted],
    dead_letters: Sequence[DeadLetter],
    seen: SeenIds | AbstractSet[UUID],
    contexts: dict[str, CitizenContext],
    now: datetime,
    *,
    ruleset: RuleSet | None = None,
) -> BatchPlan:
    """Decide every accepted event, per citizen in ``occurred_at`` order. A rule that raises
    dead-letters only its event.

    Order (issue 11 item 4): each citizen's events are decided by ``decision_order``, i.e. by
    ``occurred_at`` across all three topics, a discharge first at equal times, then batch
    (offset) order - so a discharge and an observation sent back to back on different topics
    are decided discharge-first whichever partition fetch returned first. This is safe because
    a batch is one transaction and its offsets are acknowledged together after the commit:
    reordering decisions inside it moves no offset, and a crash replays the whole batch, which
    is decided the same way again. Per-partition semantics are untouched: audit rows are still
    written in consumption order (``audit_seq`` follows the offsets of each partition), dead
    letters keep their offset-derived ids, and citizens never wait for one another.

    Each event is decided (``decide``: ``dispatcher.rules.assessment.evaluate`` bounded by the
    topic's maximum age; a late discharge re-assesses the citizen's recent observations)
    against its citizen's context as updated by the events decided before it; the final
    context of every citizen with an accepted event is in ``plan.contexts``. ``ruleset``
    defaults to the packaged one.
    """
    rs = ruleset or default_ruleset()
    plan = BatchPlan(dead_letters=list(dead_letters))
    claimed = claimed_ids(seen)
    current = dict(contexts)
    audits: dict[int, AuditRow] = {}
    for index in decision_order([(a.incoming.topic, a.event) for a in accepted]):
        item = accepted[index]
        event = item.event
        digest = identity(item, claimed, now)
        if digest is None:
            plan.duplicates.append(item)
            continue
        if isinstance(digest, DeadLetter):  # the id is taken by other content
            plan.dead_letters.append(digest)
            continue
        try:
            decision = decide(item.incoming.topic, event, current.get(event.citizen_id), now, rs)
            assessment, ctx = decision.assessment, decision.context
            escalation = (
                build_escalation(assessment, first_route(assessment, ctx), now)
                if assessment.escalate
                else None
            )
        except Exception as exc:  # any rule failure must dead-letter, not crash
            plan.dead_letters.append(
                make_dead_letter(
                    item.incoming,
                    [rule_error(exc)],
                    now,
                    event.event_id,
                    DeadLetterCategory.RULE_ERROR,
                )
            )
            continue
        claimed[event.event_id] = digest
        current[event.citizen_id] = ctx
        plan.contexts[event.citizen_id] = ctx
        audits[index] = AuditRow(
            item.incoming, event, assessment, _outcome(event, assessment), digest
        )
        if escalation is not None:
            plan.escalations.append(escalation)
        plan.escalations.extend(decision.escalations)
    plan.audits.extend(audits[i] for i in sorted(audits))
    return plan


# At equal ``occurred_at`` a discharge is decided first: it is the context the others need.
TOPIC_PRIORITY: dict[str, int] = {DISCHARGES: 0}


def decision_order(events: Sequence[tuple[str, InputEvent]]) -> list[int]:
    """Indices of ``(topic, event)`` pairs in the order they are decided: each citizen's events
    by (``occurred_at``, topic priority - discharge first -, position in the batch), citizens
    by their first event. Stable: equal keys keep batch (offset) order."""
    by_citizen: dict[str, list[int]] = {}
    for i, (_, event) in enumerate(events):
        by_citizen.setdefault(event.citizen_id, []).append(i)
    order: list[int] = []
    for indices in by_citizen.values():
        order.extend(
            sorted(
                indices,
                key=lambda i: (events[i][1].occurred_at, TOPIC_PRIORITY.get(events[i][0], 1), i),
            )
        )
    return order


def _hours(span: timedelta) -> str:
    return f"{span / timedelta(hours=1):.1f} h"


def stale_by_age(
    assessment: Assessment, event: InputEvent, limit: timedelta, now: datetime
) -> Assessment:
    """The assessment of an event past its topic's maximum age: shown, never paged.

    Whatever its rules matched moves to ``suppressed``; it is ``stale``, ``low`` and has no
    response deadline; a note says how old it was and what the bound is, and the decision note
    says it was not paged.
    """
    matched = [r.rule_id for r in assessment.reasons]
    age = now - event.occurred_at
    why = (
        f"Stale: occurred {_hours(age)} before it was decided ({event.occurred_at.isoformat()}), "
        f"past the maximum age of {_hours(limit)} for its topic; audited and shown, never paged "
        "(its values still enter the citizen's history; issue 11 item 3)."
    )
    decision = "Decision: not paged - stale event past the maximum age" + (
        f"; matched but suppressed: {', '.join(matched)}." if matched else "."
    )
    notes = [n for n in assessment.notes if not n.startswith("Decision:")]
    return assessment.model_copy(
        update={
            "escalate": False,
            "severity": "low",
            "reasons": [],
            "suppressed": [*assessment.suppressed, *assessment.reasons],
            "response_minutes": None,
            "response_deadline": None,
            "stale": True,
            "notes": [*notes, why, decision],
        }
    )


@dataclass(frozen=True)
class Decision:
    """What one accepted event decided: its assessment and the citizen's new context, and for
    a discharge the recent observations it re-assessed to a worse outcome, each with its
    escalation (issue 11 item 4)."""

    assessment: Assessment
    context: CitizenContext
    reassessments: tuple[Assessment, ...] = ()
    escalations: tuple[Escalation, ...] = ()


def decide(
    topic: str,
    event: InputEvent,
    ctx: CitizenContext | None,
    now: datetime,
    ruleset: RuleSet,
) -> Decision:
    """The decision for one accepted event of ``topic``: ``evaluate``, bounded by the topic's
    maximum age (``dispatcher.ingest.decoding.MAX_EVENT_AGE_BY_TOPIC``, the single source).

    An event past that age is still assessed and folded into the context like any other (a
    late weight is still a weight for the trend of the next one), but its own assessment never
    pages. A nurse observation is remembered in the context (``dispatcher.rules.recent``); a
    discharge re-assesses the remembered observations it precedes (``_reassess``).
    ``plan_batch`` and the CLI (``dispatcher assess``, ``dispatcher rules test``) both decide
    through here.
    """
    assessment, new_ctx = evaluate(event, ctx, now, ruleset)
    limit = past_max_age(topic, event.occurred_at, now)
    if limit is not None:
        return Decision(stale_by_age(assessment, event, limit, now), new_ctx)
    if isinstance(event, NurseObservation):
        entry = RecentObservation.of(event, assessment.severity)
        recent = remember(new_ctx.recent_observations, entry)
        return Decision(assessment, new_ctx.model_copy(update={"recent_observations": recent}))
    if isinstance(event, DischargeEvent):
        return _reassess(event, assessment, new_ctx, now, ruleset)
    return Decision(assessment, new_ctx)


def reassessment_escalation_id(observation_id: UUID, discharge_id: UUID) -> UUID:
    """Stable: the same late discharge re-assessing the same observation, replayed, is one
    escalation; its id differs from the observation's own escalation id."""
    return uuid5(ESCALATION_NAMESPACE, f"reassessment:{observation_id}:{discharge_id}")


def _with_note(assessment: Assessment, note: str) -> Assessment:
    """``assessment`` with ``note`` added before its closing decision note."""
    notes = list(assessment.notes)
    at = len(notes) - 1 if notes and notes[-1].startswith("Decision:") else len(notes)
    return assessment.model_copy(update={"notes": [*notes[:at], note, *notes[at:]]})


def _reassess(
    discharge: DischargeEvent,
    assessment: Assessment,
    ctx: CitizenContext,
    now: datetime,
    ruleset: RuleSet,
) -> Decision:
    """Assess again, with the discharge folded in, every remembered observation taken after
    ``discharged_at`` (the citizen was home) and within its maximum age; escalate those whose
    severity is now higher than the one they were decided with.

    Each is assessed against the context as of its own time (the NEWS2 entries and the
    observations before it), so it is judged as if the discharge had arrived in time. Only a
    worse outcome escalates (a better one never withdraws a page); the remembered severity is
    raised, so a further discharge pages again only for a further rise.
    """
    recent = ctx.recent_observations
    reassessed: list[Assessment] = []
    escalations: list[Escalation] = []
    unchanged = 0
    for seen in ctx.recent_observations:
        if seen.at < discharge.discharged_at or past_max_age(NURSE_OBSERVATIONS, seen.at, now):
            continue
        as_of = ctx.model_copy(
            update={
                "news2_history": tuple(e for e in ctx.news2_history if e.at < seen.at),
                "last_observation_at": before(ctx.recent_observations, seen.at),
            }
        )
        again, _ = evaluate(seen.observation(ctx.citizen_id), as_of, now, ruleset)
        if not again.escalate or SEVERITY_RANK[again.severity] <= SEVERITY_RANK[seen.severity]:
            unchanged += 1
            continue
        again = _with_note(
            again,
            f"Re-assessed after the late discharge {discharge.event_id} (discharged "
            f"{discharge.discharged_at.isoformat()}, before this observation): {seen.severity} "
            f"-> {again.severity} (issue 11 item 4).",
        )
        escalation_id = reassessment_escalation_id(seen.event_id, discharge.event_id)
        escalation = build_escalation(
            again,
            first_route(again, ctx),
            now,
            case_id=case_id_for(ctx.citizen_id, escalation_id),
        ).model_copy(
            update={
                "escalation_id": escalation_id,
                "triggered_by": [seen.event_id, discharge.event_id],
            }
        )
        recent = with_severity(recent, seen.event_id, again.severity)
        reassessed.append(again)
        escalations.append(escalation)
    if reassessed or unchanged:
        changed = "; ".join(
            f"observation {a.event_id} now {a.severity} (escalated)" for a in reassessed
        )
        assessment = _with_note(
            assessment,
            f"Re-assessed {len(reassessed) + unchanged} earlier observation(s) taken after "
            f"this discharge: " + (changed if changed else "no outcome got worse") + ".",
        )
    return Decision(
        assessment,
        ctx.model_copy(update={"recent_observations": recent}),
        tuple(reassessed),
        tuple(escalations),
    )


def silence_candidates(
    contexts: dict[str, CitizenContext], now: datetime, *, ruleset: RuleSet | None = None
) -> dict[UUID, tuple[CitizenContext, Assessment]]:
    """The silent-sensor assessments due now, by their (deterministic) event id."""
    rs = ruleset or default_ruleset()
    due: dict[UUID, tuple[CitizenContext, Assessment]] = {}
    for ctx in contexts.values():
        assessment = silent_sensor_check(ctx, now, rs)
        if assessment is not None:
            due[assessment.event_id] = (ctx, assessment)
    return due


def plan_silence_checks(
    due: dict[UUID, tuple[CitizenContext, Assessment]], seen: set[UUID], now: datetime
) -> BatchPlan:
    """Audit (and escalate) each due silence check not seen before: one per silence episode."""
    plan = BatchPlan()
    for event_id, (ctx, assessment) in due.items():
        if event_id in seen or ctx.last_sensor_at is None:
            continue
        check = SensorSilenceCheck(
            event_id=event_id,
            schema_version=1,
            occurred_at=now,
            source=TIMER_SOURCE,
            citizen_id=ctx.citizen_id,
            last_sensor_at=ctx.last_sensor_at,
        )
        incoming = Incoming(TIMER_SOURCE, -1, -1, ctx.citizen_id.encode(), None)
        plan.audits.append(
            AuditRow(
                incoming, check, assessment, "escalated" if assessment.escalate else "assessed"
            )
        )
        if assessment.escalate:
            plan.escalations.append(build_escalation(assessment, first_route(assessment, ctx), now))
    return plan
