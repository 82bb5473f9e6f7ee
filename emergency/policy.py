"""The district's emergency policy: what each action shares and for how long."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

from emergency.model import Action, Activation, Trigger
from emergency.site_fields import Fields

ALL_ZONES = "*"

DEFAULT_SHARED_ZONES: Mapping[Action, frozenset[str]] = MappingProxyType(
    {
        Action.HOLD: frozenset(),
        Action.SECURE: frozenset({"exterior", "entrances"}),
        Action.LOCKDOWN: frozenset({ALL_ZONES}),
        Action.EVACUATE: frozenset({ALL_ZONES}),
        Action.SHELTER: frozenset(),
    }
)


DEFAULT_ACTIVATION: Mapping[Trigger, Activation] = MappingProxyType(
    {
        Trigger.PANEL: Activation.WINDOW,
        Trigger.PANIC: Activation.WINDOW,
        # An approved dispatcher request is itself the human decision.
        Trigger.DISPATCHER: Activation.IMMEDIATE,
        Trigger.RECORDS: Activation.CONFIRM,
    }
)


@dataclass(frozen=True)
class Policy:
    version: int = 1
    default_timebox_minutes: int = 60
    hard_max_minutes: int = 480
    confirm_window_seconds: int = 10
    require_explicit_confirm: bool = False
    shared_zones: Mapping[Action, frozenset[str]] = field(default_factory=lambda: DEFAULT_SHARED_ZONES)
    shared_tags: Mapping[Action, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    activation: Mapping[Trigger, Activation] = field(default_factory=lambda: DEFAULT_ACTIVATION)
    # Dispatcher call types approved without an administrator (e.g. a 911 call from the school).
    auto_approve_calls: frozenset[str] = frozenset()
    # A restraint/time-out episode left open longer than this stops holding its cameras
    # and is flagged for review (a records system that never sends the end must not
    # blind police forever).
    privacy_hold_max_minutes: int = 240

    def activation_for(self, trigger: Trigger) -> Activation:
        """``require_explicit_confirm`` turns every self-activating window into a confirm."""
        mode = self.activation.get(trigger, Activation.CONFIRM)
        if self.require_explicit_confirm and mode is Activation.WINDOW:
            return Activation.CONFIRM
        return mode

    @property
    def confirm_window(self) -> timedelta:
        return timedelta(seconds=self.confirm_window_seconds)

    @property
    def timebox(self) -> timedelta:
        """Time-box of a new activation; never beyond the hard maximum."""
        return timedelta(minutes=min(self.default_timebox_minutes, self.hard_max_minutes))

    @property
    def hard_max(self) -> timedelta:
        return timedelta(minutes=self.hard_max_minutes)

    def shares_zone(self, action: Action, zone: str) -> bool:
        zones = self.shared_zones.get(action, frozenset())
        return ALL_ZONES in zones or zone in zones

    def shares(self, action: Action, zone: str, tags: tuple[str, ...] = ()) -> bool:
        """A camera is in scope by its zone or by any of its coverage tags."""
        return self.shares_zone(action, zone) or bool(self.shared_tags.get(action, frozenset()) & set(tags))


def parse_policy(f: Fields, known_zones: frozenset[str]) -> Policy:
    """``known_zones``: every building's zones, so a misspelt zone is refused rather than never shared."""
    defaults = Policy()
    version = f.integer("version", defaults.version, minimum=1)
    timebox = f.integer("default_timebox_minutes", defaults.default_timebox_minutes, minimum=1)
    hard_max = f.integer("hard_max_minutes", defaults.hard_max_minutes, minimum=1)
    if timebox > hard_max:
        raise f.error("default_timebox_minutes", f"{timebox} exceeds hard_max_minutes {hard_max}")
    confirm = f.integer("confirm_window_seconds", defaults.confirm_window_seconds, minimum=0)
    explicit = f.boolean("require_explicit_confirm", defaults.require_explicit_confirm)
    shared = dict(DEFAULT_SHARED_ZONES)
    table = f.table("shared_zones", optional=True)
    for key in table.keys():
        action = _action(table, key)
        zones = table.texts(key)
        for i, zone in enumerate(zones):
            if zone != ALL_ZONES and zone not in known_zones:
                raise table.error(f"{key}[{i}]", f"{zone!r} is not a zone of any building")
        shared[action] = frozenset(zones)
    tags_table = f.table("shared_tags", optional=True)
    tags: dict[Action, frozenset[str]] = {}
    for key in tags_table.keys():
        tags[_action(tags_table, key)] = frozenset(tags_table.texts(key))
    activation = dict(DEFAULT_ACTIVATION)
    act_table = f.table("activation", optional=True)
    for key in act_table.keys():
        try:
            trigger = Trigger(key)
        except ValueError:
            raise act_table.error(
                key, f"unknown trigger; expected one of {', '.join(t.value for t in Trigger)}"
            ) from None
        activation[trigger] = act_table.choice(key, Activation)
    auto_approve = frozenset(f.texts("auto_approve_calls", ()))
    hold_max = f.integer("privacy_hold_max_minutes", defaults.privacy_hold_max_minutes, minimum=1)
    f.finish()
    return Policy(
        version=version,
        default_timebox_minutes=timebox,
        hard_max_minutes=hard_max,
        confirm_window_seconds=confirm,
        require_explicit_confirm=explicit,
        shared_zones=MappingProxyType(shared),
        shared_tags=MappingProxyType(tags),
        activation=MappingProxyType(activation),
        auto_approve_calls=auto_approve,
        privacy_hold_max_minutes=hold_max,
    )


def _action(table: Fields, key: str) -> Action:
    try:
        return Action(key)
    except ValueError:
        raise table.error(key, f"unknown action; expected one of {', '.join(a.value for a in Action)}") from None
