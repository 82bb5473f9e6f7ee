"""Video in the field: one real aiortc viewer (decoding) in its own network namespace, per
condition: clean, 3 % random loss at 2 Mbit/s, a blackout, an address change. Prints
frames decoded per second, the longest freeze and the time to recover.

Needs root, iproute2 and nftables (tests/netns.py). Run from the repository root:

    .venv/bin/python bench/field.py                    # ~1.5 min
    .venv/bin/python bench/field.py --blackout 60      # a longer blackout
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.netns import NetNs, check_system
from tests.netns_gateway import first_after, fps_between, longest_freeze, now, report, start_link_gateway

SECONDS = 20.0
EVENT_AT = 6.0


async def condition(site: Path, name: str, blackout: float) -> dict[str, float | str]:
    with NetNs() as ns:
        lg, server, task = await start_link_gateway(site, ns)
        try:
            seconds = SECONDS + (blackout if name == "blackout" else 0)
            if name == "3 % loss, 2 Mbit/s":
                ns.rate(2000)
                ns.loss(3)
            t0 = now()
            proc = lg.viewer("hs-front", "--seconds", str(seconds))
            event_end = None
            if name in ("blackout", "address change"):
                await asyncio.sleep(EVENT_AT)
                if name == "blackout":
                    ns.blackout()
                    await asyncio.sleep(blackout)
                    ns.clear()
                else:
                    ns.change_address()
                event_end = now()
            r = await report(proc, seconds + 30)
        finally:
            await lg.gateway.sessions.close_all("bench over")
            server.should_exit = True  # type: ignore[attr-defined]
            await asyncio.wait_for(task, 15)
    frames = r["frames"]
    start, end = t0 + 2, t0 + seconds - 0.5
    result: dict[str, float | str] = {"condition": name}
    if event_end is None:
        result["fps"] = fps_between(frames, start, end)
        result["freeze"] = longest_freeze(frames, start, end)
        result["recover"] = "-"
    else:
        event_start = event_end - (blackout if name == "blackout" else 0)
        outside = [t for t in frames if not event_start <= t < event_end + 3]
        result["fps"] = fps_between(outside, start, end) * (end - start) / (end - start - (event_end + 3 - event_start))
        back = first_after(frames, event_end + (0.5 if name == "address change" else 0))
        result["recover"] = f"{back - event_end:.2f}" if back is not None else "never"
        after = back if back is not None else end
        result["freeze"] = longest_freeze(frames, max(start, after), end)
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blackout", type=float, default=10.0, help="seconds of blackout (default 10)")
    args = parser.parse_args()
    check_system()
    from gateway.cli.demo import sample_site_toml, write_demo_plans

    rows = []
    for name in ("clean", "3 % loss, 2 Mbit/s", "blackout", "address change"):
        with tempfile.TemporaryDirectory() as tmp:  # a fresh district each time
            write_demo_plans(Path(tmp))
            site = Path(tmp) / "site.toml"
            site.write_text(sample_site_toml(floor_plans=True))
            rows.append(await condition(site, name, args.blackout))
        print(rows[-1], flush=True)
    print()
    print(
        f"| condition | frames decoded/s | longest freeze (s) | time to recover (s) |  (blackout {args.blackout:.0f} s)"
    )
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['condition']} | {float(row['fps']):.1f} | {float(row['freeze']):.2f} | {row['recover']} |")


if __name__ == "__main__":
    asyncio.run(main())
