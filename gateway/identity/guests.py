"""Mutual-aid guests as the directory answers for them (``guest:{pass}``), and how they
proved who they are."""

from __future__ import annotations

from emergency.guest_passes import GuestPass
from emergency.site import Account, Role

# Break-glass with two channels (the texted link, the PIN spoken over the radio): counts as MFA.
GUEST_AMR = ("guest_pass", "pin", "mfa")


def guest_account(p: GuestPass) -> Account:
    """The provisioned person a used pass makes: an officer of an agency of their own."""
    return Account(
        id=p.account_id,
        name=f"{p.guest_name} (badge {p.guest_badge}, {p.label})",
        role=Role.OFFICER,
        agency=p.agency_id,
        buildings=(),
    )
