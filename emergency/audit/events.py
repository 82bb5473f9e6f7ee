"""The catalogue of audit event types: every ``event_type`` the log holds, with the
plain words the auditor timeline and the exports show for it.

Code appends and compares these members, never the strings (a test holds the tree to
that). A member equals its string, so entries read back from storage compare equal.

The words are a small template, filled by ``emergency.audit.wording``:
``{field}`` or ``{field:format}``; ``[...]`` is left out unless every field in it has a
value, and ``[a|b]`` shows ``a`` if it can, else ``b``. Fields: ``actor`` (who did it),
``viewer`` (the officer of a viewing session), ``camera`` (the camera named by the
entry's object), ``agency``, ``object``, or any key of the entry's details.
Formats: ``upper``, ``time``, ``duration``, ``count NOUN`` (a list's length: "3 cameras"),
``is VALUE`` (shows nothing, and counts as a value only when the field equals VALUE).
"""

from __future__ import annotations

from enum import StrEnum


class AuditEvent(StrEnum):
    text: str

    def __new__(cls, value: str, text: str) -> AuditEvent:
        member = str.__new__(cls, value)
        member._value_ = value
        member.text = text
        return member

    # the emergency (emergency.service)
    EMERGENCY_DECLARED = "emergency.declared", "{actor} declared [{action:upper}|an emergency]"
    EMERGENCY_CONFIRMED = "emergency.confirmed", "{actor} confirmed the emergency"
    EMERGENCY_ACTIVATED = "emergency.activated", "The emergency became active: police may now see the shared cameras"
    EMERGENCY_ACTION_CHANGED = "emergency.action_changed", "{actor} changed the action[ to {action}]"
    EMERGENCY_THREAT_BASIS_SET = (
        "emergency.threat_basis_set",
        "{actor} recorded the threat that justifies sharing video",
    )
    EMERGENCY_EXTENSION_REQUESTED = "emergency.extension_requested", "{actor} asked to extend access beyond the maximum"
    EMERGENCY_EXTENDED = "emergency.extended", "{actor} extended the time limit"
    EMERGENCY_EXTENSION_DENIED = "emergency.extension_denied", "{actor} refused the extension"
    EMERGENCY_ALL_CLEAR = "emergency.all_clear", "{actor} declared ALL CLEAR: all video sharing ended"
    EMERGENCY_CANCELLED = "emergency.cancelled", "{actor} cancelled the emergency (false alarm)"
    EMERGENCY_CLOSED = "emergency.closed", "{actor} closed the incident"
    # a refused command on an emergency: "<verb>.denied"
    DECLARE_DENIED = "declare.denied", "{actor} tried to declare an emergency and was refused"
    CONFIRM_DENIED = "confirm.denied", "{actor} tried to confirm the emergency and was refused"
    CANCEL_DENIED = "cancel.denied", "{actor} tried to cancel the emergency and was refused"
    ALL_CLEAR_DENIED = "all_clear.denied", "{actor} tried to declare ALL CLEAR and was refused"
    CLOSE_DENIED = "close.denied", "{actor} tried to close the incident and was refused"
    CHANGE_DENIED = "change.denied", "{actor} tried to change the action and was refused"
    THREAT_BASIS_DENIED = "threat_basis.denied", "{actor} tried to record the threat and was refused"
    EXTEND_DENIED = "extend.denied", "{actor} tried to extend the time limit and was refused"
    APPROVE_EXTENSION_DENIED = "approve_extension.denied", "{actor} tried to approve the extension and was refused"
    DENY_EXTENSION_DENIED = "deny_extension.denied", "{actor} tried to refuse the extension and was refused"
    LISTENER_FAILED = "listener.failed", "A step that follows a change failed[ (after {event})]"

    # police access to cameras
    GRANT_STARTED = ("grant.started", "Access granted to {agency}[ for {cameras:count camera}][, until {expires:time}]")
    GRANT_EXTENDED = "grant.extended", "Access for {agency} extended"
    GRANT_RESCOPED = "grant.rescoped", "The cameras shared with {agency} changed"
    GRANT_ENDED = "grant.ended", "Access for {agency} ended"
    VIEW_STARTED = "view.started", "{actor} started watching {camera}"
    VIEW_ENDED = "view.ended", "{viewer} stopped watching {camera}[ after {seconds:duration}]"
    VIEW_DENIED = "view.denied", "{actor} was refused video from {camera}"
    SNAPSHOT_SERVED = "snapshot.served", "{actor} was shown a still image from {camera}"
    RELAY_STARTED = (
        "relay.started",
        "Gateway node [{from_node}|?] began passing {camera} to node [{to_node}|?], for officers watching there",
    )
    RELAY_ENDED = (
        "relay.ended",
        "Gateway node [{from_node}|?] stopped passing {camera} to node [{to_node}|?][ after {seconds:duration}]",
    )

    # dispatchers' access requests (emergency.requests)
    ACCESS_REQUEST_SUBMITTED = "access_request.submitted", "{actor} asked for camera access"
    ACCESS_REQUEST_APPROVED = "access_request.approved", "{actor} approved the access request"
    ACCESS_REQUEST_DENIED = "access_request.denied", "The access request was denied"
    ACCESS_REQUEST_DENIED_BY_ADMIN = "access_request.denied_by_admin", "{actor} denied the access request"
    ACCESS_REQUEST_APPROVE_DENIED = (
        "access_request.approve.denied",
        "{actor} tried to approve the access request and was refused",
    )
    ACCESS_REQUEST_DENY_DENIED = (
        "access_request.deny.denied",
        "{actor} tried to deny the access request and was refused",
    )

    # the district's record systems (emergency.records)
    RECORD_THREAT_RECEIVED = "record.threat.received", "A threat assessment record arrived ({object})"
    RECORD_THREAT_UPDATED = "record.threat.updated", "A threat assessment record was updated ({object})"
    RECORD_THREAT_REFUSED = "record.threat.refused", "A threat assessment record was refused"
    RECORD_RESTRAINT_RECEIVED = "record.restraint.received", "A restraint or seclusion record arrived ({object})"
    RECORD_RESTRAINT_UPDATED = "record.restraint.updated", "A restraint or seclusion record was updated ({object})"
    RECORD_RESTRAINT_REFUSED = "record.restraint.refused", "A restraint or seclusion record was refused"
    RECORD_REPORT_RECEIVED = "record.report.received", "An incident report arrived ({object})"
    RECORD_REPORT_UPDATED = "record.report.updated", "An incident report was updated ({object})"
    RECORD_REPORT_REFUSED = "record.report.refused", "An incident report was refused"
    RECORD_REPORT_LISTED = "record.report.listed", "{actor} read the list of incident reports"
    RECORD_EFFECT = "record.effect", "A linked record had an effect ({object})"
    PRIVACY_HOLD_STARTED = "privacy_hold.started", "A privacy hold began[ on {cameras:count camera}] ({object})"
    PRIVACY_HOLD_ENDED = "privacy_hold.ended", "A privacy hold ended[ on {cameras:count camera}] ({object})"
    PRIVACY_HOLD_REVIEW = "privacy_hold.review", "Privacy hold reviewed ({object})"

    # mutual-aid guest passes (emergency.guest_passes)
    GUEST_PASS_CREATED = (
        "guest_pass.created",
        "{actor} created a guest pass for a mutual-aid responder[ (unused, it expires at {expires:time})]",
    )
    GUEST_PASS_CREATE_DENIED = "guest_pass.create.denied", "{actor} tried to create or end a guest pass and was refused"
    GUEST_PASS_SENT = (
        "guest_pass.sent",
        "{actor} had the guest pass link sent by text[ to {to}] (the PIN goes by radio)",
    )
    GUEST_PASS_REDEEMED = (
        "guest_pass.redeemed",
        "{guest_name}[ (badge {badge})][ of {guest_agency}] used the guest pass: mutual-aid access began",
    )
    GUEST_PASS_REFUSED = "guest_pass.refused", "A guest pass was refused[: {why}]"
    GUEST_PASS_EXPIRED = "guest_pass.expired", "A guest pass expired unused"
    GUEST_PASS_ENDED = "guest_pass.ended", "A guest pass ended[: {why}]"

    # signing in and permissions
    AUTH_LOGIN = "auth.login", "Sign-in by {actor}"
    AUTH_LOGOUT = "auth.logout", "{actor} signed out"
    AUTH_FAILURE = "auth.failure", "A request without valid credentials was refused ({object})"
    AUTH_FAILURES = (
        "auth.failures",
        "{count} more requests without valid credentials were refused[ from {address}] in the minute from {minute:time}",
    )
    AUTH_SESSION_LOCKED = "auth.session_locked", "The session of {actor} was locked"
    AUTH_TOKEN_ISSUED = "auth.token_issued", "An access token was issued for {object}"
    AUTH_TOKEN_RENEWED = "auth.token_renewed", "{actor} renewed a short-lived access token"
    ACCESS_REVOKED = (
        "auth.access_revoked",
        "{actor} took back every sign-in, token and live video of {object}[ ({sign_ins:count sign-in})]",
    )
    # OpenID Connect sign-in (gateway/identity/oidc.py); the success is an auth.login
    OIDC_REFUSED = "auth.oidc_refused", "A sign-in through the provider of {agency} was refused[: {why}]"
    PERSON_PROVISIONED = (
        "person.provisioned",
        "{actor} was added at their first sign-in through the provider of {agency}",
    )
    PERSON_UPDATED = "person.updated", "The details of {actor} changed at sign-in[ ({fields})]"
    PERMISSION_DENIED = "permission.denied", "{actor} was refused"
    ACCOUNT_ENROLLED = (
        "account.enrolled",
        "{actor} set the sign-in password[ and a new authenticator{totp:is new}] of {object}",
    )
    TRIGGER_DENIED = "trigger.denied", "A panic button trigger was refused ({object})"

    # reading the log
    AUDIT_READ = "audit.read", "{actor} searched the audit log"
    AUDIT_VERIFIED = "audit.verified", "{actor} verified the audit log"
    AUDIT_MIRROR_ACKNOWLEDGED = (
        "audit.mirror_acknowledged",
        "{actor} acknowledged that audit entries up to seq {through} are missing from the mirror[: {why}]",
    )
    AUDIT_EXPORTED = "audit.exported", "{actor} downloaded this record[ ({format:upper})]"
    DISCLOSURE_READ = "disclosure.read", "{actor} read this disclosure record"
    REPORT_READ = "report.read", "{actor} read the monthly access report[ for {month}]"

    # the gateway itself
    GATEWAY_STARTED = "gateway.started", "The gateway started ({object})"
    GATEWAY_STOPPED = "gateway.stopped", "The gateway stopped ({object})"
    GATEWAY_STOPPED_UNEXPECTEDLY = (
        "gateway.stopped_unexpectedly",
        "The gateway ({object}) had stopped unexpectedly[; its last sign of life was at {last_heartbeat:time}]"
        "[, cutting off {sessions:count viewing session}]",
    )
    CONFIG_LOADED = "config.loaded", "The gateway loaded its configuration ({object})"
    CONFIG_CHANGED = "config.changed", "The configuration changed since the last start ({object})"
    CAMERA_ADDED = "camera.added", "{actor} added the camera {camera}"
    NOTIFICATION_DELIVERED = "notification.delivered", "Notification delivered[ ({object})]"
    NOTIFICATION_DEAD = "notification.dead", "Notification could not be delivered[ ({object})]"

    @classmethod
    def of_record(cls, kind: str, change: str) -> AuditEvent:
        """``record.<kind>.<change>`` for a record kind (threat, restraint, report) and a
        change (received, updated, refused); ValueError for a pair the catalogue lacks."""
        member = cls.lookup(f"record.{kind}.{change}")
        if member is None:
            raise ValueError(f"the audit catalogue has no record.{kind}.{change}")
        return member

    @classmethod
    def lookup(cls, event_type: str) -> AuditEvent | None:
        """The member for an entry's ``event_type``; None for a type not in the catalogue."""
        member = cls._value2member_map_.get(event_type)
        return member if isinstance(member, cls) else None


__all__ = ["AuditEvent"]
