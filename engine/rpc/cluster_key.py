"""The cluster key: the shared secret that admits a process to a cluster.

Owns the key file format and its creation. A key is one CURVE keypair (zmq's Z85 text
form), generated for every cluster, loopback included (by `engine.init()` for an embedded
cluster, by `ownrun start --head`), and written with mode 0600 into the session directory
(itself 0700 in a per-user root: cluster/paths.py). Every member of the cluster (head, daemons,
workers, drivers) uses the same keypair both as its server key and as its client key: the
transport admits a peer only if it proves it holds the secret half, so knowing the key
file is being a member (a shared-secret scheme; see transport.py for the checks).

File format (JSON): `{"public": "<40 Z85 chars>", "secret": "<40 Z85 chars>"}`.

Pure data and file I/O; thread-safe. Failures: `ValueError` naming the file when it is not
a key file; `OSError` (FileNotFoundError, PermissionError) as raised when reading it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import zmq

# The variable a driver (or `ownrun start --address`) reads the key file's path from.
KEY_ENV = "OWNRUN_CLUSTER_KEY"
KEY_FILE_NAME = "cluster.key"


@dataclass(frozen=True)
class CurveKeys:
    """The cluster keypair, Z85-encoded (40 ASCII bytes each) as zmq's socket options want."""

    public: bytes
    secret: bytes
    path: str | None = None  # the file it came from, passed on to child processes

    @classmethod
    def generate(cls, path: str) -> CurveKeys:
        """Creates a new keypair in `path` (mode 0600, must not exist yet)."""
        if not zmq.has("curve"):
            raise RuntimeError("this pyzmq has no CURVE support: cannot create a cluster key")
        public, secret = zmq.curve_keypair()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"public": public.decode(), "secret": secret.decode()}, f)
        return cls(public, secret, os.path.abspath(path))

    @classmethod
    def load(cls, path: str) -> CurveKeys:
        with open(path) as f:
            text = f.read()
        try:
            data = json.loads(text)
            public, secret = data["public"].encode(), data["secret"].encode()
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ValueError(f"{path} is not an ownrun cluster key file") from None
        if len(public) != 40 or len(secret) != 40:
            raise ValueError(f"{path} is not an ownrun cluster key file (bad key length)")
        return cls(public, secret, os.path.abspath(path))

    @classmethod
    def from_path_or_env(cls, path: str | None) -> CurveKeys | None:
        """The key at `path`, else at $OWNRUN_CLUSTER_KEY, else None."""
        path = path or os.environ.get(KEY_ENV) or None
        return cls.load(os.path.expanduser(path)) if path else None

    def __repr__(self) -> str:  # never print the secret
        return f"CurveKeys(public={self.public.decode()!r}, path={self.path!r})"
