"""Mutual-aid guest passes: break-glass access for a responder from an agency without an
account (a deputy, a trooper, a neighbouring town's officer), bound to one emergency.

An administrator of the building or a dispatcher creates a pass while the emergency is
active: a link (sent by text) and a PIN (read out over the radio), two channels. The
responder opens the link and gives name, badge number, agency and the PIN; the pass then
makes them a provisioned person ``guest:{pass}`` with an agency of their own
(``mutual-aid:{pass}``) and a grant of exactly the cameras the emergency shares with the
agreement agencies (``EmergencyService._sync_grants`` keeps it so, and ends it with the
emergency).

Rules: single use; an unused pass expires after ``PASS_MINUTES``; ``MAX_WRONG_PINS`` wrong
PINs kill it; it dies with the emergency (all-clear, cancel, close, end of the time-box).
Neither the link nor the PIN is stored: the link as its SHA-256, the PIN as an HMAC keyed
by the link, so a copy of the database lets nobody guess the PIN offline. Every step is
audited; the PIN and the link never are.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from emergency.audit import AuditEvent, AuditLog
from emergency.clock import Clock
from emergency.errors import DomainError, Forbidden, Invalid, InvalidTransition, NotFound
from emergency.ids import new_id
from emergency.model import Actor, State
from emergency.permissions import Permission, may

if TYPE_CHECKING:
    from emergency.outbox import Outbox
    from emergency.service import EmergencyService
    from emergency.store import GuestPassStore

PASS_MINUTES = 15
MAX_WRONG_PINS = 5
PIN_DIGITS = 6
MAX_FIELD = 80
ACCOUNT_PREFIX = "guest"
AGENCY_PREFIX = "mutual-aid:"
_PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{5,22}[0-9]$")


def account_id(pass_id: str) -> str:
    return f"{ACCOUNT_PREFIX}:{pass_id}"


def agency_id(pass_id: str) -> str:
    return f"{AGENCY_PREFIX}{pass_id}"


def is_guest_agency(agency: str | None) -> bool:
    return bool(agency) and str(agency).startswith(AGENCY_PREFIX)


def link_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def pin_hash(secret: str, pin: str) -> str:
    """Keyed by the link: without it (never stored) the hash cannot be searched."""
    return hmac.new(secret.encode("utf-8", "replace"), pin.encode("utf-8", "replace"), hashlib.sha256).hexdigest()


def masked_phone(phone: str) -> str:
    """Enough of a number for the audit log to tell which one, not enough to text it."""
    digits = re.sub(r"\D", "", phone)
    return f"…{digits[-4:]}"


class PassState(StrEnum):
    OPEN = "open"  # waiting for its responder
    REDEEMED = "redeemed"  # used: the guest has access while the emergency shares video
    DEAD = "dead"  # too many wrong PINs
    EXPIRED = "expired"  # not used in time
    ENDED = "ended"  # the emergency ended, or someone ended the pass


@dataclass(frozen=True)
class GuestPass:
    id: str
    emergency_id: str
    building: str
    link_hash: str
    pin_hash: str
    created_by: str
    created_at: datetime
    expires_at: datetime  # for an unused pass; a used one lasts as long as the emergency shares
    state: PassState = PassState.OPEN
    wrong_pins: int = 0
    redeemed_at: datetime | None = None
    guest_name: str | None = None
    guest_badge: str | None = None
    guest_agency: str | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None

    @property
    def account_id(self) -> str:
        return account_id(self.id)

    @property
    def agency_id(self) -> str:
        return agency_id(self.id)

    @property
    def label(self) -> str:
        """How pages and reports name the guest's agency."""
        return f"mutual aid: {self.guest_agency}" if self.guest_agency else "mutual aid"


@dataclass(frozen=True)
class IssuedPass:
    """What the issuer is shown once: the link and the PIN are stored nowhere."""

    guest_pass: GuestPass
    link_secret: str
    pin: str
    link: str


class PassRefused(DomainError):
    """A redemption refused: ``reason`` is the audited code, the message is for the responder."""

    code = "guest_pass_refused"

    def __init__(self, reason: str, detail: str, status: int = 403) -> None:
        super().__init__(detail)
        self.reason = reason
        self.status = status


# why a pass that is not open refuses, in the responder's words
_NOT_OPEN = {
    PassState.REDEEMED: ("already_used", "this guest pass was already used; ask for a new one"),
    PassState.DEAD: ("too_many_wrong_pins", "this guest pass was locked after too many wrong PINs; ask for a new one"),
    PassState.EXPIRED: ("expired", f"this guest pass expired ({PASS_MINUTES} minutes unused); ask for a new one"),
    PassState.ENDED: ("ended", "this guest pass has ended with its emergency"),
}


def _field(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{name}: required")
    text = " ".join(value.split())
    if len(text) > MAX_FIELD:
        raise Invalid(f"{name}: at most {MAX_FIELD} characters")
    return text


class GuestPasses:
    def __init__(
        self,
        store: GuestPassStore,
        audit: AuditLog,
        clock: Clock,
        emergencies: EmergencyService,
        *,
        link_for: Callable[[str], str] = lambda secret: f"/guest/{secret}",
        outbox: Outbox | None = None,
        secret: Callable[[], str] = lambda: secrets.token_urlsafe(24),
        pin: Callable[[], str] = lambda: f"{secrets.randbelow(10**PIN_DIGITS):0{PIN_DIGITS}d}",
    ) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self._emergencies = emergencies
        self._link_for = link_for
        self._outbox = outbox
        self._secret = secret
        self._pin = pin

    # commands

    def issue(
        self, actor: Actor, emergency_id: str, *, send_to: str | None = None, source: str | None = None
    ) -> IssuedPass:
        """A new pass for an active emergency; ``send_to`` a phone number the outbox texts
        the link to (the PIN is never sent with it: read it out over the radio)."""
        self.tick()
        try:
            e = self._emergencies.get(emergency_id)
            if not may(actor, Permission.ISSUE_GUEST_PASS, e.building):
                raise Forbidden(f"{actor.role} {actor.id} may not give guest passes for {e.building!r}")
            if not e.sharing_at(self._clock.now()):
                raise InvalidTransition("guest passes are for an active emergency that shares cameras")
            phone = None
            if send_to is not None and str(send_to).strip():
                phone = str(send_to).strip()
                if not _PHONE.match(phone):
                    raise Invalid("send_to: a phone number such as +1 555 010 0199")
        except DomainError as err:
            self._audit.append(
                AuditEvent.GUEST_PASS_CREATE_DENIED,
                actor=actor,
                object=f"emergency:{emergency_id}",
                outcome="denied",
                source=source,
                reason=f"{err.code}: {err}",
                details={"emergency": emergency_id},
            )
            raise
        now = self._clock.now()
        secret, pin = self._secret(), self._pin()
        p = GuestPass(
            id=new_id(),
            emergency_id=e.id,
            building=e.building,
            link_hash=link_hash(secret),
            pin_hash=pin_hash(secret, pin),
            created_by=actor.id,
            created_at=now,
            expires_at=now + timedelta(minutes=PASS_MINUTES),
        )
        link = self._link_for(secret)
        with self._store.transaction():
            self._store.insert_guest_pass(p)
            self._record(
                p, AuditEvent.GUEST_PASS_CREATED, actor=actor, source=source, details={"expires": p.expires_at}
            )
            if phone is not None and self._outbox is not None:
                self._outbox.enqueue(
                    AuditEvent.GUEST_PASS_SENT,
                    {
                        "to": phone,
                        "text": f"Sightline camera access for the emergency at {e.building}: {link} "
                        f"(the PIN comes by radio; the link works once, within {PASS_MINUTES} minutes)",
                        "link": link,
                        "pass": p.id,
                        "emergency": e.id,
                        "expires": p.expires_at,
                    },
                )
                self._record(
                    p, AuditEvent.GUEST_PASS_SENT, actor=actor, source=source, details={"to": masked_phone(phone)}
                )
        return IssuedPass(p, secret, pin, link)

    def redeem(
        self, secret: str, pin: str, *, name: str, badge: str, agency: str, source: str | None = None
    ) -> GuestPass:
        """The responder's step. Raises :class:`PassRefused` (audited) or Invalid (a blank field,
        which costs no try)."""
        guest = {"name": _field(name, "name"), "badge": _field(badge, "badge"), "agency": _field(agency, "agency")}
        self.tick()
        refusal: PassRefused | None = None
        events: list[object] = []
        with self._store.transaction():
            now = self._clock.now()
            p = self._store.guest_pass_by_link(link_hash(secret)) if isinstance(secret, str) else None
            if p is None:
                refusal = PassRefused(
                    "unknown_link", "this guest link is not valid; check it or ask for a new one", 404
                )
                self._audit.append(
                    AuditEvent.GUEST_PASS_REFUSED,
                    actor_id="guest:?",
                    object="guest_pass:?",
                    outcome="denied",
                    source=source,
                    reason=refusal.reason,
                    details={"claimed": guest, "why": refusal.reason},
                )
            else:
                p, refusal = self._check(p, secret, pin, now)
                if refusal is not None:
                    self._record(
                        p,
                        AuditEvent.GUEST_PASS_REFUSED,
                        reason=refusal.reason,
                        actor_id=p.account_id,
                        source=source,
                        outcome="denied",
                        details={"claimed": guest, "wrong_pins": p.wrong_pins},
                    )
                    if p.state is PassState.DEAD and refusal.reason == "wrong_pin_limit":
                        self._record(p, AuditEvent.GUEST_PASS_ENDED, source=source, reason="too many wrong PINs")
                else:
                    p = replace(
                        p,
                        state=PassState.REDEEMED,
                        redeemed_at=now,
                        guest_name=guest["name"],
                        guest_badge=guest["badge"],
                        guest_agency=guest["agency"],
                    )
                    self._store.update_guest_pass(p)
                    self._record(
                        p,
                        AuditEvent.GUEST_PASS_REDEEMED,
                        actor_id=p.account_id,
                        source=source,
                        details={
                            "guest_name": p.guest_name,
                            "badge": p.guest_badge,
                            "guest_agency": p.guest_agency,
                            "agency": p.agency_id,
                            "agency_label": p.label,
                        },
                    )
                    self._emergencies.open_guest_grant(p.emergency_id, p.agency_id, now, p.account_id, source, events)
        if refusal is not None:
            raise refusal
        assert p is not None
        self._emergencies.tell(events)
        return p

    def end(self, actor: Actor, pass_id: str, *, source: str | None = None) -> GuestPass:
        """Someone in charge takes a pass back (a leaked link, the wrong person): its guest's
        grant ends with it, so their video stops."""
        p = self._existing(pass_id)
        if not may(actor, Permission.ISSUE_GUEST_PASS, p.building):
            self._audit.append(
                AuditEvent.GUEST_PASS_CREATE_DENIED,
                actor=actor,
                object=f"guest_pass:{pass_id}",
                outcome="denied",
                source=source,
                reason="forbidden: may not end guest passes for this building",
                details={"emergency": p.emergency_id},
            )
            raise Forbidden(f"{actor.role} {actor.id} may not end guest passes for {p.building!r}")
        events: list[object] = []
        with self._store.transaction():
            p = self._existing(pass_id)
            if p.state in (PassState.OPEN, PassState.REDEEMED):
                p = self._finish(p, PassState.ENDED, f"ended by {actor.id}", actor=actor, source=source)
                self._emergencies.end_guest_grant(
                    p.emergency_id, p.agency_id, "guest pass ended", actor, source, events
                )
        self._emergencies.tell(events)
        return p

    def tick(self) -> None:
        """Expire unused passes past their 15 minutes, and end passes whose emergency no
        longer shares video (the guest's grant ended with it, in the emergency's own command).
        Reads first and writes only when something is due: the gateway runs it every tick."""
        if not any(self._due(p, self._clock.now()) for p in self._store.unfinished_guest_passes()):
            return
        with self._store.transaction():
            now = self._clock.now()
            for p in self._store.unfinished_guest_passes():
                why = self._due(p, now)
                if why == "expired":
                    self._finish(p, PassState.EXPIRED, f"not used within {PASS_MINUTES} minutes", at=p.expires_at)
                elif why is not None:
                    self._finish(p, PassState.ENDED, why)

    def _due(self, p: GuestPass, now: datetime) -> str | None:
        """Why ``p`` must finish now ("expired", or why it ends), or None."""
        e = self._store.get_emergency(p.emergency_id)
        if e is None:
            return "emergency gone"
        if not e.sharing_at(now):
            return "time limit reached" if e.state is State.ACTIVE else f"emergency {e.state}"
        if p.state is PassState.OPEN and now >= p.expires_at:
            return "expired"
        return None

    # queries

    def get(self, pass_id: str) -> GuestPass | None:
        return self._store.get_guest_pass(pass_id)

    def of_emergency(self, emergency_id: str) -> list[GuestPass]:
        self.tick()
        return self._store.guest_passes_of_emergency(emergency_id)

    def in_force(self, pass_id: str) -> GuestPass | None:
        """The used pass whose guest may act now: its emergency still shares video. Read on
        every request of the guest (gateway/identity/directory.py), so the emergency's end
        ends the guest's session at once, before ``tick`` records it."""
        p = self._store.get_guest_pass(pass_id)
        if p is None or p.state is not PassState.REDEEMED:
            return None
        e = self._store.get_emergency(p.emergency_id)
        return p if e is not None and e.sharing_at(self._clock.now()) else None

    # internals

    def _check(self, p: GuestPass, secret: str, pin: str, now: datetime) -> tuple[GuestPass, PassRefused | None]:
        if p.state is not PassState.OPEN:
            return p, PassRefused(*_NOT_OPEN[p.state], status=410)
        e = self._store.get_emergency(p.emergency_id)
        if e is None or e.state is not State.ACTIVE or not e.sharing_at(now):
            return self._finish(p, PassState.ENDED, "emergency ended"), PassRefused(*_NOT_OPEN[PassState.ENDED], 410)
        if now >= p.expires_at:
            p = self._finish(p, PassState.EXPIRED, f"not used within {PASS_MINUTES} minutes", at=p.expires_at)
            return p, PassRefused(*_NOT_OPEN[PassState.EXPIRED], status=410)
        if not isinstance(pin, str) or not hmac.compare_digest(pin_hash(secret, pin.strip()), p.pin_hash):
            wrong = p.wrong_pins + 1
            if wrong >= MAX_WRONG_PINS:
                p = replace(p, wrong_pins=wrong, state=PassState.DEAD, ended_at=now, end_reason="too many wrong PINs")
                self._store.update_guest_pass(p)
                return p, PassRefused("wrong_pin_limit", _NOT_OPEN[PassState.DEAD][1], 403)
            p = replace(p, wrong_pins=wrong)
            self._store.update_guest_pass(p)
            left = MAX_WRONG_PINS - wrong
            return p, PassRefused("wrong_pin", f"wrong PIN; {left} {'try' if left == 1 else 'tries'} left", 403)
        return p, None

    def _finish(
        self,
        p: GuestPass,
        state: PassState,
        why: str,
        *,
        at: datetime | None = None,
        actor: Actor | None = None,
        source: str | None = None,
    ) -> GuestPass:
        done = replace(p, state=state, ended_at=at or self._clock.now(), end_reason=why)
        self._store.update_guest_pass(done)
        event = AuditEvent.GUEST_PASS_EXPIRED if state is PassState.EXPIRED else AuditEvent.GUEST_PASS_ENDED
        self._record(done, event, actor=actor, source=source, reason=why)
        return done

    def _existing(self, pass_id: str) -> GuestPass:
        p = self._store.get_guest_pass(pass_id)
        if p is None:
            raise NotFound(f"guest pass {pass_id!r} does not exist")
        return p

    def _record(
        self,
        p: GuestPass,
        event: AuditEvent,
        *,
        actor: Actor | None = None,
        actor_id: str | None = None,
        source: str | None = None,
        outcome: str = "success",
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self._audit.append(
            event,
            actor=actor,
            actor_id=None if actor else (actor_id or "system"),
            object=f"guest_pass:{p.id}",
            outcome=outcome,
            source=source,
            reason=reason,
            details={
                "emergency": p.emergency_id,
                "building": p.building,
                "pass": p.id,
                **({"why": reason} if reason else {}),
                **(details or {}),
            },
        )


__all__ = [
    "AGENCY_PREFIX",
    "GuestPass",
    "GuestPasses",
    "IssuedPass",
    "MAX_WRONG_PINS",
    "PASS_MINUTES",
    "PassRefused",
    "PassState",
    "account_id",
    "agency_id",
    "is_guest_agency",
]
