"""Triton's model-control API in explicit mode: load, readiness, canary.

Explicit mode because POLL can load a version while its files are still being written;
here Triton reads the repository only when asked. A reload keeps the loaded version
serving until the new one is ready, and leaves it serving if the new one fails to load
(Triton's model-management docs), which is what makes a release zero-downtime.

The canary loads the candidate under a scratch name (``<model>-canary``) from the
files themselves, through the load API's file override, asks it the probe requests and
unloads it. Only a candidate that answered there is published and loaded under the
model's own name, so no recommendation carries a version that has not answered Triton.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import SecretStr

from models.serving import RANK_OUTPUT
from services.recommender.triton import rank_inputs
from services.stack.settings import TRITON_ADMIN_HEADER
from services.trainer.validate import (
    ModelRejected,
    check_scores,
    config_json,
    scorer_probes,
)

# Triton restricts its repository API to this header's key (docker-compose.yml and the
# embedded stack alike); one name for both, defined where the stack sets the restriction.
ADMIN_HEADER = TRITON_ADMIN_HEADER


class TritonControlError(RuntimeError):
    """Triton refused or failed a model-control request; the message carries its reason."""


class TritonAccessDenied(TritonControlError):
    """Triton refused a model-control request for want of the admin key: the operator's
    setting is wrong, not the model, so it is never reported as a rejected model."""


class ModelControl(Protocol):
    """What a release needs from the server (tests may inject a fake)."""

    def load(self, model: str) -> None: ...

    def ready_version(self, model: str) -> int | None: ...

    def wait_ready(self, model: str, version: int, timeout_s: float) -> None: ...

    def canary(self, model: str, folder: Path, config: object) -> None: ...

    def load_files(
        self, name: str, folder: Path, config: object, parameters: dict[str, str] | None = None
    ) -> None: ...

    def unload(self, model: str) -> None: ...


class TritonControl:
    """Model control over Triton's HTTP endpoint (``tritonclient.http``)."""

    def __init__(
        self, url: str, admin_key: str | SecretStr | None = None, timeout_s: float = 300.0
    ) -> None:
        import tritonclient.http as httpclient

        self.url = url.removeprefix("http://").removeprefix("https://")
        key = admin_key.get_secret_value() if isinstance(admin_key, SecretStr) else admin_key
        # Sent on the repository API only (load, unload, index): inference needs no key.
        self.headers = {ADMIN_HEADER: key} if key else None
        self.timeout_s = timeout_s
        self._http = httpclient
        # tritonclient.http runs on gevent, whose sockets belong to the thread that made
        # them: one client per thread (a release may run on any thread).
        self._local = threading.local()

    @property
    def client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            # Loading a Python-backend model starts a stub process: seconds, not ms.
            client = self._http.InferenceServerClient(
                self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
            )
            self._local.client = client
        return client

    def close(self) -> None:
        client = getattr(self._local, "client", None)
        if client is not None:
            client.close()
            self._local.client = None

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from tritonclient.utils import InferenceServerException

        try:
            return fn(*args, **kwargs)
        except InferenceServerException as exc:
            message = exc.message() or str(exc)
            if "restricted" in message:  # Triton's answer to a missing or wrong admin key
                hint = (
                    "model control needs Triton's admin key: set TRITON_ADMIN_KEY; a stack "
                    "started by `streamrec up` keeps it in its run dir, where `streamrec` "
                    "finds it"
                    if self.headers is None
                    else "the admin key sent was refused: is TRITON_ADMIN_KEY this server's?"
                )
                raise TritonAccessDenied(
                    f"Triton at {self.url}: {what}: {message} ({hint})"
                ) from exc
            raise TritonControlError(f"Triton at {self.url}: {what}: {message}") from exc
        except OSError as exc:
            raise TritonControlError(f"Triton at {self.url} unreachable ({what}): {exc}") from exc

    def load(self, model: str) -> None:
        """(Re)load ``model`` from the repository; returns once Triton has done so."""
        self._call(f"load {model}", self.client.load_model, model, headers=self.headers)

    def unload(self, model: str) -> None:
        self._call(f"unload {model}", self.client.unload_model, model, headers=self.headers)

    def ready_version(self, model: str) -> int | None:
        """The highest version of ``model`` that Triton reports READY, if any."""
        index = self._call(
            "repository index", self.client.get_model_repository_index, headers=self.headers
        )
        ready = [
            int(entry["version"])
            for entry in index
            if entry.get("name") == model
            and entry.get("state") == "READY"
            and str(entry.get("version", "")).isdigit()
        ]
        return max(ready) if ready else None

    def wait_ready(self, model: str, version: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._call("readiness", self.client.is_model_ready, model, str(version)):
                return
            time.sleep(0.2)
        raise TritonControlError(f"{model} version {version} not ready after {timeout_s:.0f} s")

    def load_files(
        self,
        name: str,
        folder: Path,
        config: object,
        parameters: dict[str, str] | None = None,
    ) -> None:
        """Load ``folder``'s files as model ``name`` (version 1) through the load API's
        file override: nothing is written into the repository."""
        files = {
            f"file:1/{path.relative_to(folder)}": path.read_bytes()
            for path in sorted(folder.rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts
        }
        self._call(
            f"load {name}",
            self.client.load_model,
            name,
            headers=self.headers,
            config=config_json(config, name=name, parameters=parameters),
            files=files,
        )

    def canary(self, model: str, folder: Path, config: object) -> None:
        """Load ``folder`` as ``<model>-canary``, send the probes, unload it."""
        name = f"{model}-canary"
        try:
            self.load_files(name, folder, config)
        except TritonAccessDenied:
            raise  # says nothing about the model
        except TritonControlError as exc:
            raise ModelRejected(f"Triton cannot load this version: {exc}") from exc
        try:
            if model == "scorer":
                self._probe_scorer(name, config)
        finally:
            # A canary left loaded costs memory, not correctness.
            with contextlib.suppress(TritonControlError):
                self.unload(name)

    def _probe_scorer(self, name: str, config: object) -> None:
        dims = {i.name: list(i.dims) for i in config.input}  # type: ignore[attr-defined]
        probes = scorer_probes(dims["ITEMS"][-1], dims["SIDE"][-1])
        scores: list[np.ndarray | None] = []
        for probe in probes:
            inputs = rank_inputs(self._http, probe)
            try:
                result = self._call(
                    f"canary request to {name}",
                    self.client.infer,
                    name,
                    inputs,
                    outputs=[self._http.InferRequestedOutput(RANK_OUTPUT, binary_data=True)],
                )
            except TritonControlError as exc:
                raise ModelRejected(f"the canary request failed: {exc}") from exc
            out = result.as_numpy(RANK_OUTPUT)
            scores.append(None if out is None else out[0])
        check_scores(scores, probes, f"Triton canary {name}")
