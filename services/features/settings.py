"""Settings of the Feast online-feature layer, overridable with ``STREAMREC_FEAST_``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class FeatureSettings(BaseSettings):
    """Which online store Feast uses and where its registry lives.

    Two stacks stay apart when each gets its own ``data_dir`` (registry and SQLite file)
    and, on Redis, its own ``project`` or database number.
    """

    model_config = SettingsConfigDict(env_prefix="STREAMREC_FEAST_", frozen=True)

    online_store: Literal["sqlite", "redis"] = Field(
        default="sqlite",
        description="Feast's online store: `sqlite` embedded, `redis` in production",
    )
    # repr=False: the URL may carry a password, and settings objects end up in logs.
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        repr=False,
        description="`redis[s]://[[user]:password@]host[:port][/db]` for the Redis store",
    )
    data_dir: Path = Field(
        default=REPO_ROOT / ".run" / "feast",
        description="registry, SQLite store and offline (training) log",
    )
    project: str = Field(
        default="streamrec",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_]*$",
        description="Feast project: keys in a shared Redis stay apart per project",
    )
    # Each push is one SQLite transaction. Feast opens the file in rollback-journal mode
    # with full sync: a push's commit waited for several fsyncs, about a quarter of a
    # 10-row push (docs/BENCHMARKS.md, session 21). The store turns on write-ahead logging,
    # which keeps a commit atomic and lets readers in other processes (Feast's
    # `get_online_features`) read while a worker writes; `normal` then syncs at
    # checkpoints, not at every commit. A crash of the process loses nothing committed; a
    # power cut or kernel crash may lose the last commits, which the store's next pushes
    # rewrite (each push holds a user's or item's whole row), as Redis without persistence
    # would. `full` syncs every commit.
    sqlite_synchronous: Literal["normal", "full"] = Field(
        default="normal",
        description="SQLite online store (write-ahead log): `normal` syncs at checkpoints, "
        "`full` at every push",
    )
    # The offline log (parquet parts under data_dir, read by get_historical_features for
    # training) gets the rows each push writes online. They are buffered and flushed as one
    # part when this many are waiting or the oldest has waited this long (checked on each
    # push), and on close: a part per 10 ms micro-batch would be hundreds of thousands of
    # files a day. The cost: a crash loses the buffer from the log, not from the online
    # store. 0 seconds flushes on every push.
    offline_log: bool = Field(
        default=True, description="also write each pushed row to the offline (training) log"
    )
    offline_flush_rows: int = Field(
        default=10_000, gt=0, description="offline log: write a part once this many rows wait"
    )
    offline_flush_s: float = Field(
        default=30.0, ge=0, description="offline log: or once the oldest has waited this long"
    )

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        # Fail at start-up, not on the first push, when the URL cannot be translated.
        RedisAddress.parse(value)
        return value

    @property
    def registry_path(self) -> Path:
        return self.data_dir / "registry.db"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "online_store.db"

    @property
    def redis(self) -> RedisAddress:
        return RedisAddress.parse(self.redis_url)


@dataclass(frozen=True)
class RedisAddress:
    """A ``redis://`` URL taken apart, for Feast's ``host:port,key=value`` connection string."""

    host: str
    port: int
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False

    @classmethod
    def parse(cls, url: str) -> RedisAddress:
        """Read ``redis[s]://[[user]:password@]host[:port][/db]``; raise ValueError otherwise."""
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"redis_url must start with redis:// or rediss://, got {url!r}")
        try:
            port = parts.port or 6379
        except ValueError as exc:
            raise ValueError(f"redis_url has an invalid port: {exc}") from exc
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ValueError(f"redis_url path must be a database number, got /{path}")
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        for name, value in (("username", username), ("password", password)):
            if value and not _survives_feast(value):
                raise ValueError(
                    f"redis_url {name} cannot be passed through Feast's connection string "
                    "(no ',' allowed, and it must not read as a JSON literal such as true)"
                )
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            db=int(path) if path else 0,
            username=username,
            password=password,
            ssl=parts.scheme == "rediss",
        )

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis``.

        Timeouts make an unreachable server fail a call within seconds instead of hanging
        the agent that called it.
        """
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "db": self.db,
            "socket_connect_timeout": 3,
            "socket_timeout": 10,
        }
        if self.username:
            kwargs["username"] = self.username
        if self.password:
            kwargs["password"] = self.password
        if self.ssl:
            kwargs["ssl"] = True
        return kwargs

    def feast_connection_string(self) -> str:
        """The same client settings in Feast's ``host:port,key=value,...`` format.

        Feast passes every ``key=value`` to ``redis.Redis`` after JSON-decoding the value.
        """
        kwargs = self.client_kwargs()
        params = [f"{kwargs.pop('host')}:{kwargs.pop('port')}"]
        params += [
            f"{key}={json.dumps(v) if isinstance(v, bool) else v}" for key, v in kwargs.items()
        ]
        return ",".join(params)

    def describe(self) -> str:
        """Where the server is, without credentials, for error messages."""
        return f"{self.host}:{self.port}/{self.db}"


def _survives_feast(value: str) -> bool:
    """Whether Feast hands ``value`` to redis-py unchanged.

    Feast splits its connection string on commas without escaping, then JSON-decodes each
    value: "123" survives (redis-py sends the int back as "123"), "true" or "1e3" do not.
    """
    if "," in value:
        return False
    try:
        decoded = json.loads(value)
    except ValueError:
        return True
    # Only a plain integer comes back as the same text from redis-py.
    return type(decoded) is int and str(decoded) == value
