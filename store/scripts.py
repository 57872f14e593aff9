"""The Lua scripts behind every atomic state change, one per file in ``lua/``.

Each file opens with the KEYS and ARGV it takes. The scripts that change a job's state
publish the outcome on the job's events channel themselves: one round trip. Every script
starts with ``lua/prelude.lua``, the functions that keep a state change and its index, and a
finished record and its TTL, together.
"""

from __future__ import annotations

from importlib.resources import files

import redis
from redis.commands.core import Script

NAMES = ("claim", "renew", "progress", "finish", "reap", "requeued", "cancel", "fail_unclaimed",
         "delete", "unsent", "resent")


def source(name: str) -> str:
    return (files(__package__) / "lua" / f"{name}.lua").read_text()


def register(client: redis.Redis) -> dict[str, Script]:
    """Every script, registered with ``client`` (loaded into Redis on first use)."""
    prelude = source("prelude")
    return {name: client.register_script(prelude + source(name)) for name in NAMES}
