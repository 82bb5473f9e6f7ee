"""Who an account id names: an ``[[accounts]]`` entry of the site file, or a person
provisioned at sign-in (an agency's OpenID Connect subject, a mutual-aid guest).

Provisioned ids carry a prefix and a colon (``"{agency}:{sub}"``, ``"guest:{pass}"``);
site-file ids are plain identifiers and can never contain one, so a lookup never has to
guess which kind it holds. Role, agency and buildings are read here on every request,
which is what makes removing an account (or a provisioned person) take effect at once.
"""

from __future__ import annotations

from collections.abc import Callable

from emergency.site import Account, Site

Lookup = Callable[[str], Account | None]


class Directory:
    def __init__(self, site: Site) -> None:
        self._site = site
        self._lookups: dict[str, Lookup] = {}

    def register(self, prefix: str, lookup: Lookup) -> None:
        """Ids written ``"{prefix}:..."`` are answered by ``lookup`` (given the whole id)."""
        if not prefix or ":" in prefix:
            raise ValueError(f"a directory prefix is a plain name, not {prefix!r}")
        self._lookups[prefix] = lookup

    def get(self, account_id: str) -> Account | None:
        prefix, colon, _ = account_id.partition(":")
        if not colon:
            return self._site.accounts.get(account_id)
        lookup = self._lookups.get(prefix)
        return lookup(account_id) if lookup is not None else None

    def name(self, account_id: str) -> str:
        """A person's name for pages and reports; the id itself when nobody answers to it."""
        account = self.get(account_id)
        return account.name if account is not None else account_id
