"""[gateway] database: absent keeps SQLite in the data dir; a postgresql:// URL selects PostgreSQL."""

from __future__ import annotations

import pytest

from gateway.cli.demo import sample_site_toml
from gateway.config import ConfigError, load_config
from gateway.runtime import open_domain


def write(tmp_path, line: str | None):
    text = sample_site_toml()
    if line is not None:
        text = text.replace('node = "demo"', f'node = "demo"\n{line}', 1)
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def test_default_is_sqlite_in_the_data_dir(tmp_path):
    config = load_config(write(tmp_path, None))
    assert config.database_url is None and config.database == tmp_path / "sightline.db"
    store, _, _ = open_domain(config)
    try:
        assert type(store).__name__ == "SqliteStore" and (tmp_path / "sightline.db").exists()
    finally:
        store.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://sightline@db.internal:5432/sightline?sslmode=verify-full",
        "postgres://sightline@/sightline?host=/var/run/postgresql",
        "postgresql:///sightline",
    ],
)
def test_postgresql_urls_are_accepted(tmp_path, url):
    assert load_config(write(tmp_path, f'database = "{url}"')).database_url == url


@pytest.mark.parametrize(
    "value, message",
    [
        ('"sqlite:///x.db"', "postgresql://"),
        ('"/var/lib/sightline.db"', "postgresql://"),
        ('""', "postgresql://"),
        ("5432", "postgresql://"),
        ('"postgresql://sightline:hunter2@db/sightline"', "password"),
        ('"postgresql://sightline@db/sightline?password=hunter2"', "password"),
        ('"postgresql://db:notaport/sightline"', "not a valid URL"),
    ],
)
def test_bad_database_values_are_refused(tmp_path, value, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(write(tmp_path, f"database = {value}"))
    assert "hunter2" not in str(info.value)


def test_open_domain_uses_postgresql_when_configured(tmp_path, pg_url):
    config = load_config(write(tmp_path, f'database = "{pg_url}"'))
    store, audit, _ = open_domain(config)
    try:
        assert type(store).__name__ == "PgStore"
        assert audit.verify().ok
        assert not (tmp_path / "sightline.db").exists()
    finally:
        store.close()
