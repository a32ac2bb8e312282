"""How the ``openai`` engine talks to its server: the client and its retries, the request
budget, the response cache, the log of non-2xx responses, bounded concurrency, and the usage
counters (tokens, cost). The engine's modes (openai.py) only build request bodies and read
answers through ``_call``.

* retries: the client's own (429, 5xx, timeouts, dropped connections; exponential backoff
  with jitter; ``Retry-After`` honoured); every non-2xx response is logged and counted.
* ``max_requests``: a per-run budget of requests actually sent (cache hits are free).
* a response cache keyed by the full request (api_cache.py).

The key goes to the client only: never into a cache key, a record or a log line.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

from jmedllm.engines.api_cache import ResponseCache, request_key
from jmedllm.engines.base import EngineError

log = logging.getLogger("jmedllm.engines.openai")

CACHE_FILE = "api_cache.sqlite"
EVENTS_FILE = "api_events.jsonl"


def _public_url(url: str) -> str:
    """The server URL without user info, query or fragment (what may be recorded)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _dump(obj: Any) -> dict[str, Any]:
    return obj.model_dump(mode="json", exclude_none=True) if hasattr(obj, "model_dump") else dict(obj)


def _usage(resp: dict[str, Any]) -> dict[str, int]:
    u = resp.get("usage") or {}
    details = u.get("completion_tokens_details") or {}
    return {"prompt_tokens": int(u.get("prompt_tokens") or 0), "completion_tokens": int(u.get("completion_tokens") or 0),
            "reasoning_tokens": int(details.get("reasoning_tokens") or 0)}


class _StatusError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message = status, message


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
    return str(getattr(exc, "message", exc))[:300]


class OpenAITransport:
    """The transport half of :class:`jmedllm.engines.openai.OpenAIEngine`."""

    def _init_transport(self, key: str, base_url: str | None, max_retries: int, timeout: float,
                        cache: str | Path | None, openai: Any, max_tokens_field: str | None) -> None:
        """The client (the key goes to it only), the counters and the cache."""
        self._lock = threading.Lock()
        self.sent = 0  # requests this engine sent (each may have been retried by the client)
        self.cache_hits = 0
        self.status_counts: dict[str, int] = {}
        self.attempts = 0
        self._events_path: Path | None = None
        http_client = openai.DefaultHttpxClient(event_hooks={"request": [self._on_request],
                                                             "response": [self._on_response]})
        self._client = openai.OpenAI(api_key=key, base_url=base_url, max_retries=int(max_retries),
                                     timeout=float(timeout), http_client=http_client)
        del key
        self.base_url = _public_url(str(self._client.base_url))
        # OpenAI's own chat API takes max_completion_tokens (reasoning models refuse max_tokens)
        self.max_tokens_field = max_tokens_field or (
            "max_completion_tokens" if self.base_url.startswith("https://api.openai.com") else "max_tokens")
        self._openai = openai
        self._cache: ResponseCache | None = None
        self._cache_off = cache == "off"
        if cache not in (None, "off"):
            self._cache = ResponseCache(cache)

    # -- cache and event log -----------------------------------------------------------------------

    def use_cache_dir(self, folder: str | Path) -> None:
        """Keep the response cache and the request event log in ``folder`` (the run directory)."""
        folder = Path(folder)
        if self._cache is None and not self._cache_off:
            self._cache = ResponseCache(folder / CACHE_FILE)
        self._events_path = folder / EVENTS_FILE

    def close(self) -> None:
        self._client.close()
        if self._cache is not None:
            self._cache.close()

    # -- transport --------------------------------------------------------------------------------

    def _on_request(self, request) -> None:
        with self._lock:
            self.attempts += 1

    def _on_response(self, response) -> None:
        status = str(response.status_code)
        with self._lock:
            self.status_counts[status] = self.status_counts.get(status, 0) + 1
        if response.status_code >= 400:
            retry_after = response.headers.get("retry-after")
            log.warning("%s %s -> HTTP %s%s (the client retries 408/409/429/5xx with backoff)",
                        response.request.method, response.request.url.path, status,
                        f", Retry-After {retry_after}" if retry_after else "")
            self._event({"status": response.status_code, "path": response.request.url.path,
                         "retry_after": retry_after})

    def _event(self, event: dict[str, Any]) -> None:
        if self._events_path is None:
            return
        line = json.dumps({"time": round(time.time(), 3)} | event) + "\n"
        with self._lock, open(self._events_path, "a", encoding="utf-8") as fh:
            fh.write(line)

    def _call(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """One request through the cache; the body never holds the key."""
        key = request_key(endpoint, self.base_url, body)
        if self._cache is not None:
            hit = self._cache.get(key)
            if hit is not None:
                with self._lock:
                    self.cache_hits += 1
                return hit
        with self._lock:
            if self.max_requests is not None and self.sent >= self.max_requests:
                raise EngineError(f"request budget reached: {self.sent} requests sent (max_requests="
                                  f"{self.max_requests}); answers so far are kept, rerun with a larger budget to go on")
            self.sent += 1
        body = {k: v for k, v in body.items() if k not in self.omit}
        if endpoint == "chat" and "max_tokens" in body and self.max_tokens_field != "max_tokens":
            body[self.max_tokens_field] = body.pop("max_tokens")
        extra = dict(self.extra_body)
        try:
            if endpoint == "chat":
                resp = self._client.chat.completions.create(**body, extra_body=extra or None)
            else:
                resp = self._client.completions.create(**body, extra_body=extra or None)
        except self._openai.APIStatusError as exc:
            self._event({"status": exc.status_code, "path": endpoint, "error": "gave up"})
            raise _StatusError(exc.status_code, _error_message(exc)) from None
        except (self._openai.APIConnectionError, self._openai.APITimeoutError) as exc:
            self._event({"status": None, "path": endpoint, "error": type(exc).__name__})
            raise EngineError(f"server {self.base_url} unreachable after the client's retries ({type(exc).__name__}); "
                              "answers so far are kept: rerun the same command to resume") from None
        data = _dump(resp)
        if self._cache is not None:
            self._cache.put(key, endpoint, data, _usage(data))
        return data

    def _map(self, fn, items: Sequence[Any]) -> list[Any]:
        if self.concurrency == 1 or len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(fn, items))

    def _checked(self, fn, *args):
        try:
            return fn(*args)
        except _StatusError as exc:
            raise EngineError(f"server {self.base_url} refused the request: HTTP {exc.status}: {exc.message}") from None

    # -- accounting -------------------------------------------------------------------------------

    def usage(self) -> dict[str, Any]:
        """Requests, retries, HTTP statuses, tokens and cost: this invocation's counters, and the
        cache's totals (with the cache in the run directory: every response the run used)."""
        out: dict[str, Any] = {"requests_sent": self.sent, "cache_hits": self.cache_hits,
                               "http_attempts": self.attempts, "retries": max(0, self.attempts - self.sent),
                               "http_status": dict(sorted(self.status_counts.items()))}
        if self._cache is not None:
            totals = self._cache.totals()
            out |= {"cached_responses": totals["responses"], "prompt_tokens": totals["prompt_tokens"],
                    "completion_tokens": totals["completion_tokens"], "reasoning_tokens": totals["reasoning_tokens"]}
            if self.price_input is not None or self.price_output is not None:
                cost = (totals["prompt_tokens"] * (self.price_input or 0.0)
                        + totals["completion_tokens"] * (self.price_output or 0.0)) / 1e6
                out["cost_usd"] = round(cost, 6)
        return out


__all__ = ["CACHE_FILE", "EVENTS_FILE", "OpenAITransport"]
