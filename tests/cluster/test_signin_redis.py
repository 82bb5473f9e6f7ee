"""Page sign-in sessions and failure limits shared through Redis (gateway/identity/signin_redis.py),
against a real redis-server (tests/conftest_redis.py): the Redis classes answer exactly
as the in-memory ones, two instances on one Redis behave as one, nothing secret is stored
in clear, and two gateway nodes need no sticky sessions."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest
from cryptography.fernet import Fernet

from gateway.config import ConfigError, load_config
from gateway.identity.credentials import CredentialBox
from gateway.identity.signin import FailureLimiter, SessionProblem, SignIn, SignInUnavailable, WebSessions
from gateway.identity.signin_redis import (
    TTL_MARGIN,
    RedisFailureLimiter,
    RedisSignInStore,
    RedisWebSessions,
    SignInStoreUnreachable,
)

NS = "sightline:test-district"
IDLE = 30 * 60
LIFETIME = 8 * 3600
T0 = 1_700_000_000.0


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def box() -> CredentialBox:
    return CredentialBox(Fernet.generate_key())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rclient(redis_server):
    client = RedisSignInStore.client_for(redis_server.url)
    yield client
    client.close()


def redis_nodes(rclient, box, clock, n=2) -> list[RedisWebSessions]:
    """``n`` independent instances (as on n nodes) sharing one Redis, key and clock."""
    return [RedisWebSessions(rclient, NS, box, idle_seconds=IDLE, lifetime=LIFETIME, now=clock) for _ in range(n)]


@pytest.fixture(params=["memory", "redis"])
def sessions(request, box, clock):
    """The same behaviour is asked of both implementations."""
    if request.param == "memory":
        return WebSessions(idle_seconds=IDLE, lifetime=LIFETIME, now=clock)
    client = RedisSignInStore.client_for(request.getfixturevalue("redis_server").url)
    request.addfinalizer(client.close)
    return redis_nodes(client, box, clock, 1)[0]


def make(sessions, user="officer", amr=("pwd", "otp", "mfa")):
    return sessions.create(user, f"token-of-{user}-" + "x" * 40, f"jti-{user}", amr, "10.0.0.7")


# ----------------------------------------------------------- same semantics as memory


def test_create_lookup_and_touch(sessions, clock) -> None:
    cookie, made = make(sessions)
    assert len(sessions) == 1
    assert made.created == made.last_seen == T0 and made.mfa
    clock.t += 60
    found = sessions.lookup(cookie)
    assert (found.key, found.account_id, found.token, found.token_id, found.amr, found.source, found.created) == (
        made.key,
        "officer",
        made.token,
        "jti-officer",
        ("pwd", "otp", "mfa"),
        "10.0.0.7",
        T0,
    )
    assert found.last_seen == T0 + 60
    assert sessions.idle_deadline(found) == T0 + 60 + IDLE
    clock.t += 60
    assert sessions.lookup(cookie, touch=False).last_seen == T0 + 60  # passive: not activity
    with pytest.raises(SessionProblem) as unknown:
        sessions.lookup("not-a-cookie")
    assert not unknown.value.locked and str(unknown.value) == "the session is unknown or has ended"


def test_idle_lock(sessions, clock) -> None:
    cookie, _ = make(sessions)
    clock.t += IDLE  # exactly the limit is still fine
    sessions.lookup(cookie)
    clock.t += IDLE + 1
    with pytest.raises(SessionProblem) as locked:
        sessions.lookup(cookie, touch=False)
    assert locked.value.locked and str(locked.value) == f"no activity for more than {IDLE} seconds"
    assert locked.value.session.account_id == "officer" and locked.value.session.token_id == "jti-officer"
    assert len(sessions) == 0
    with pytest.raises(SessionProblem) as gone:  # reported locked once; then simply unknown
        sessions.lookup(cookie)
    assert not gone.value.locked


def test_absolute_lifetime(sessions, clock) -> None:
    cookie, made = make(sessions)
    while clock.t + 20 * 60 - T0 <= LIFETIME:
        clock.t += 20 * 60
        sessions.lookup(cookie)
    clock.t += 20 * 60
    with pytest.raises(SessionProblem) as locked:
        sessions.lookup(cookie)
    assert locked.value.locked and str(locked.value) == "the session reached its maximum length"
    late = dataclasses.replace(made, last_seen=T0 + LIFETIME - 60)
    assert sessions.idle_deadline(late) == T0 + LIFETIME  # the lifetime caps the idle deadline


def test_end(sessions) -> None:
    cookie, made = make(sessions)
    other, _ = make(sessions, "auditor")
    ended = sessions.end(cookie)
    assert ended is not None and ended.key == made.key and ended.token == made.token
    assert sessions.end(cookie) is None
    with pytest.raises(SessionProblem):
        sessions.lookup(cookie)
    assert sessions.lookup(other).account_id == "auditor" and len(sessions) == 1


def test_sweep(sessions, clock) -> None:
    idle, _ = make(sessions, "auditor")
    clock.t += IDLE / 2
    busy, _ = make(sessions, "officer")
    clock.t += IDLE / 2 + 1
    stale = sessions.sweep()
    assert [s.account_id for s in stale] == ["auditor"]
    assert sessions.sweep() == []
    assert sessions.lookup(busy).account_id == "officer"
    with pytest.raises(SessionProblem):
        sessions.lookup(idle)


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_limiter_window(kind, request) -> None:
    clock = Clock(T0)
    if kind == "memory":
        limiter = FailureLimiter(3, 60.0, now=clock)
    else:
        client = RedisSignInStore.client_for(request.getfixturevalue("redis_server").url)
        request.addfinalizer(client.close)
        limiter = RedisFailureLimiter(client, NS, "user", 3, 60.0, now=clock)
    key = ("principal", "127.0.0.1")
    answers = []
    for dt in (0, 10, 10):
        limiter.record(key)
        answers.append(limiter.retry_after(key))
        clock.t += dt
    assert answers == [0, 0, 51]  # limited at the 3rd failure (T0+10) until the oldest (T0) leaves the window
    assert limiter.retry_after(("principal", "10.9.9.9")) == 0  # another address
    assert limiter.retry_after(key) == 41
    clock.t = T0 + 60  # the oldest are exactly one window old: still counted
    assert limiter.retry_after(key) == 1
    clock.t = T0 + 60.5  # they left the window; one failure (T0+10) remains
    assert limiter.retry_after(key) == 0
    limiter.record(key)
    assert limiter.retry_after(key) == 0
    limiter.record(key)
    assert limiter.retry_after(key) == 10  # oldest in the window: T0+10
    limiter.clear(key)
    assert limiter.retry_after(key) == 0


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_account_limit_and_known_addresses(kind, request, box) -> None:
    """The per-account limit across addresses and the addresses an account signed in from,
    alike in memory and shared by two nodes on one Redis."""
    if kind == "memory":
        one = two = SignIn()
    else:
        url = request.getfixturevalue("redis_server").url
        stores = [RedisSignInStore(RedisSignInStore.client_for(url), NS, box) for _ in range(2)]
        for store in stores:
            request.addfinalizer(store.close)
        one, two = (SignIn(shared=store) for store in stores)
    for i in range(10):
        assert not (one if i % 2 else two).per_account.retry_after("principal")
        (one if i % 2 else two).per_account.record("principal")
    assert 890 < one.per_account.retry_after("principal") <= 901 and two.per_account.retry_after("principal")
    assert not one.per_account.retry_after("auditor")
    assert not two.known_source("principal", "192.0.2.10")
    one.remember_source("principal", "192.0.2.10")
    one.remember_source("principal", "192.0.2.10")
    assert two.known_source("principal", "192.0.2.10")
    assert not two.known_source("principal", "192.0.2.11") and not two.known_source("auditor", "192.0.2.10")
    assert not two.known_source("principal", None)


# ----------------------------------------------------------- several nodes on one Redis


def test_a_session_made_on_one_node_works_and_ends_on_the_other(rclient, box, clock) -> None:
    a, b = redis_nodes(rclient, box, clock)
    cookie, made = make(a)
    clock.t += 100
    assert b.lookup(cookie).last_seen == T0 + 100
    assert a.lookup(cookie, touch=False).last_seen == T0 + 100  # B's touch is seen on A
    assert b.end(cookie).token_id == "jti-officer"
    assert a.end(cookie) is None
    with pytest.raises(SessionProblem):
        a.lookup(cookie)
    assert rclient.keys("*session:*") == []


def test_an_idle_session_is_locked_once_across_nodes(rclient, box, clock) -> None:
    a, b = redis_nodes(rclient, box, clock)
    cookie, _ = make(a)
    clock.t += IDLE + 1
    problems = []
    for node in (b, a):
        with pytest.raises(SessionProblem) as exc:
            node.lookup(cookie)
        problems.append(exc.value.locked)
    assert problems == [True, False]


def test_sweep_on_every_node_audits_each_session_once(rclient, box, clock) -> None:
    nodes = redis_nodes(rclient, box, clock, 4)
    made = {make(nodes[i % 4], f"user{i}")[1].key for i in range(30)}
    clock.t += IDLE - 10
    keep, _ = make(nodes[0], "active")
    clock.t += 11
    nodes[1].lookup(keep)
    results: list[list] = [[] for _ in nodes]
    barrier = threading.Barrier(len(nodes))

    def sweep(i: int) -> None:
        barrier.wait()
        for _ in range(3):
            results[i].extend(nodes[i].sweep())

    threads = [threading.Thread(target=sweep, args=(i,)) for i in range(len(nodes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    swept = [s.key for r in results for s in r]
    assert sorted(swept) == sorted(made), "each ended session must be returned (audited) by exactly one node"
    assert len(nodes[2]) == 1 and nodes[3].lookup(keep).account_id == "active"


def test_a_touch_cannot_bring_back_an_ended_session(rclient, box, clock) -> None:
    a, b = redis_nodes(rclient, box, clock)
    for _ in range(20):
        cookie, made = make(a)
        stop = threading.Event()
        outcomes = []

        def touch() -> None:
            while not stop.is_set():
                try:
                    b.lookup(cookie)
                    outcomes.append("ok")
                except SessionProblem:
                    outcomes.append("gone")
                    return

        toucher = threading.Thread(target=touch)
        toucher.start()
        assert a.end(cookie) is not None
        stop.set()
        toucher.join(10)
        assert not rclient.exists(f"{NS}:signin:session:{made.key}")
        with pytest.raises(SessionProblem):
            b.lookup(cookie)
    assert len(a) == 0


def test_no_cookie_or_token_in_clear_and_keys_expire(rclient, box, clock) -> None:
    a, _ = redis_nodes(rclient, box, clock)
    limiter = RedisFailureLimiter(rclient, NS, "user", 5, 60.0)
    limiter.record(("principal", "127.0.0.1"))
    cookie, made = make(a)
    a.lookup(cookie)
    dump = []
    for key in rclient.scan_iter("*"):
        assert key.startswith(f"{NS}:signin:"), key
        kind = rclient.type(key)
        value = {
            "hash": rclient.hgetall,
            "zset": lambda k: rclient.zrange(k, 0, -1, withscores=True),
            "string": rclient.get,
        }[kind](key)
        dump.append(f"{key} {value!r}")
        ttl = rclient.ttl(key)
        assert ttl > 0, f"{key} has no expiry"
        if key.endswith(made.key):
            assert LIFETIME < ttl <= LIFETIME + TTL_MARGIN
    text = "\n".join(dump)
    assert made.token not in text and cookie not in text and "token-of-" not in text
    assert "officer" not in text and "principal" not in text and "jti-officer" not in text
    assert f"{NS}:signin:session:{made.key}" in text  # the key is the sha256 of the cookie


def test_a_record_copied_to_another_session_is_refused(rclient, box, clock) -> None:
    a, _ = redis_nodes(rclient, box, clock)
    admin_cookie, admin = make(a, "admin")
    mine, me = make(a, "auditor")
    rclient.hset(f"{NS}:signin:session:{me.key}", "record", rclient.hget(f"{NS}:signin:session:{admin.key}", "record"))
    with pytest.raises(SessionProblem):
        a.lookup(mine)
    assert a.lookup(admin_cookie).account_id == "admin"


def test_a_node_with_another_key_answers_unavailable_not_signed_out(rclient, box, clock) -> None:
    a, _ = redis_nodes(rclient, box, clock)
    stranger = RedisWebSessions(rclient, NS, CredentialBox(Fernet.generate_key()), now=clock)
    cookie, _ = make(a)
    with pytest.raises(SignInUnavailable) as exc:
        stranger.lookup(cookie)
    assert exc.value.status == 503 and "misconfigured" in exc.value.detail
    assert a.lookup(cookie).account_id == "officer"


def test_redis_gone_is_unavailable_not_unknown(redis_server, box, clock) -> None:
    client = RedisSignInStore.client_for(redis_server.url)
    a = RedisWebSessions(client, NS, box, now=clock)
    limiter = RedisFailureLimiter(client, NS, "user", 5, 60.0)
    cookie, _ = make(a)
    redis_server.stop()
    for call in (
        lambda: a.lookup(cookie),
        a.sweep,
        lambda: a.end(cookie),
        lambda: make(a),
        lambda: limiter.retry_after("k"),
        lambda: limiter.record("k"),
    ):
        with pytest.raises(SignInUnavailable) as exc:
            call()
        assert exc.value.status == 503
    redis_server.start()  # an empty Redis (no persistence): the session is gone, the client reconnects
    with pytest.raises(SessionProblem):
        a.lookup(cookie)
    assert limiter.retry_after("k") == 0
    client.close()


# ----------------------------------------------------------- configuration and start


def write_site(tmp_path, redis_line: str):
    from gateway.cli.demo import sample_site_toml

    path = tmp_path / "site.toml"
    path.write_text(sample_site_toml().replace('node = "demo"', f'node = "demo"\n{redis_line}'))
    return path


@pytest.mark.parametrize(
    "value, message",
    [
        ('"http://127.0.0.1:6379/0"', "redis:// or rediss://"),
        (
            '"redis://:hunter2@127.0.0.1:6379/0"',
            "must not hold a password; give it to the gateway in the REDIS_PASSWORD",
        ),
        ('"redis://127.0.0.1:6379/0?password=hunter2"', "must not hold a password"),
        ('"redis://127.0.0.1:99999/0"', "not a valid URL"),
        ('"redis://127.0.0.1:6379/zero"', "database number"),
        ('"redis:///0"', "must name a host"),
        ('""', "must be a redis://host:port/db URL"),
        ("6379", "must be a redis://host:port/db URL"),
    ],
)
def test_bad_redis_settings_are_refused_naming_the_key(tmp_path, value, message) -> None:
    with pytest.raises(ConfigError, match="redis") as exc:
        load_config(write_site(tmp_path, f"redis = {value}"))
    assert "[gateway] redis" in str(exc.value) and message in str(exc.value)
    assert "hunter2" not in str(exc.value)


def test_good_redis_settings_load(tmp_path) -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://cache.district.example:6380/2", "redis://sightline@10.0.0.5"):
        assert load_config(write_site(tmp_path, f'redis = "{url}"')).redis_url == url
    assert load_config(write_site(tmp_path, "")).redis_url is None
    assert SignIn.for_config(load_config(write_site(tmp_path, ""))).shared is None


def test_unreachable_redis_fails_the_start_saying_what_to_check(tmp_path, redis_server) -> None:
    from gateway.app import create_app
    from gateway.runtime import Gateway

    port = redis_server.port
    redis_server.stop()
    config = load_config(write_site(tmp_path, f'redis = "redis://127.0.0.1:{port}/0"'))
    gateway = Gateway(config)
    try:
        with pytest.raises(SignInStoreUnreachable) as exc:
            create_app(gateway)
    finally:
        gateway.store.close()
    text = str(exc.value)
    assert isinstance(exc.value, ConfigError)  # so 'sightline serve' prints it and exits 2
    assert "[gateway] redis" in text and f"127.0.0.1:{port}" in text
    assert "Check that Redis is running and reachable" in text


def test_password_comes_from_the_environment(tmp_path, redis_server, monkeypatch, caplog) -> None:
    secret = "s3cret-" + Fernet.generate_key().decode()[:12]
    admin = redis_server.client()
    admin.config_set("requirepass", secret)
    admin.close()
    config = load_config(write_site(tmp_path, f'redis = "{redis_server.url}"'))
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    with pytest.raises(SignInStoreUnreachable, match="REDIS_PASSWORD"):
        SignIn.for_config(config)
    monkeypatch.setenv("REDIS_PASSWORD", "wrong")
    with pytest.raises(SignInStoreUnreachable, match="refused this node's credentials"):
        SignIn.for_config(config)
    monkeypatch.setenv("REDIS_PASSWORD", secret)
    state = SignIn.for_config(config)
    try:
        cookie, _ = state.sessions.create("officer", "tok", "jti", ("pwd",), None)
        assert state.sessions.lookup(cookie).account_id == "officer"
        assert secret not in repr(state.shared.link.client)
    finally:
        state.close()
    assert secret not in caplog.text


def test_the_sealed_record_is_bound_to_its_key(rclient, box, clock) -> None:
    """The sealed record opens to the session, bound to its key (what the tamper check relies on)."""
    a, _ = redis_nodes(rclient, box, clock)
    cookie, made = make(a)
    record = rclient.hget(f"{NS}:signin:session:{made.key}", "record")
    assert record.startswith("enc:v1:")
    data = json.loads(box.open(record))
    assert data["key"] == made.key and data["token"] == made.token and cookie not in json.dumps(data)
