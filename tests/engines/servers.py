"""Real local servers for engine tests: llama-cpp-python's bundled OpenAI-compatible server on a
GGUF file, and a small recording proxy (127.0.0.1 only) that can inject HTTP errors."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """``python -m llama_cpp.server`` on 127.0.0.1; stopped with ``stop()`` (or as a context manager)."""

    def __init__(self, gguf: Path, log_dir: Path, *, port: int | None = None, logits_all: bool = True,
                 n_ctx: int = 2048) -> None:
        self.gguf, self.log_dir, self.logits_all, self.n_ctx = gguf, log_dir, logits_all, n_ctx
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 180.0) -> "LlamaServer":
        log = open(self.log_dir / f"llama-server-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf), "--host", "127.0.0.1",
             "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--n_threads", "1",
             "--logits_all", "true" if self.logits_all else "false", "--model_alias", "tiny"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited ({self.proc.returncode}); see {log.name}")
            try:
                with urllib.request.urlopen(self.url + "/models", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not come up in {timeout}s; see {log.name}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class RecordingProxy:
    """Forwards to ``upstream`` (host:port); records each request (path, JSON body, headers);
    answers the statuses queued in ``inject`` itself, one per request, before forwarding again."""

    MAX_RECORDS = 500

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.inject: list[int] = []
        self.records: list[dict] = []
        self.injected: list[int] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._forward(None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                self._forward(body)

            def _forward(self, body: bytes | None) -> None:
                with proxy._lock:
                    if len(proxy.records) < proxy.MAX_RECORDS:
                        proxy.records.append({"path": self.path, "headers": dict(self.headers),
                                              "body": json.loads(body) if body else None})
                    status = proxy.inject.pop(0) if proxy.inject else None
                if status is not None:
                    proxy.injected.append(status)
                    payload = json.dumps({"error": {"message": f"injected {status}", "type": "test"}}).encode()
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    if status == 429:
                        self.send_header("retry-after", "0.1")
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "RecordingProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
