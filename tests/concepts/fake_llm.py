"""A fake OpenAI-compatible endpoint (real HTTP on 127.0.0.1) and a fake text encoder for tests.

The server answers ``POST /v1/chat/completions`` like OpenAI does (JSON with ``usage``). A test
scripts its next replies with ``fake.script(["429", "ok", ...])`` (modes: ok, malformed, stall,
429, 500, 503, 401, 404; empty, null and no_choices for a 200 with content "", content null
and ``choices: []``; html for a proxy's HTML page; hang accepts and never answers); unscripted
requests get ``fake.responder(prompt) -> text``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


class FakeLLM:
    def __init__(self) -> None:
        self.queue: list[str] = []
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.responder = lambda prompt: '["concept one", "concept two"]'
        self.stall_s = 1.0
        self.lock = threading.Lock()
        self.closed = threading.Event()

    def script(self, modes: list[str]) -> None:
        with self.lock:
            self.queue = list(modes)

    def next_mode(self) -> str:
        with self.lock:
            return self.queue.pop(0) if self.queue else "ok"


def _handler(fake: FakeLLM):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def _send(self, code: int, body: dict | str, kind: str = "application/json") -> None:
            data = (json.dumps(body) if isinstance(body, dict) else body).encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with fake.lock:
                fake.requests.append(body)
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
            mode = fake.next_mode()
            err = {"error": {"message": mode, "type": "test"}}
            if mode == "stall":
                time.sleep(fake.stall_s)
                return self._send(200, self._answer(body, "[]"))
            if mode in {"429", "500", "503", "401", "404"}:
                return self._send(int(mode), err)
            if mode == "hang":  # the connection is accepted, the answer never comes
                fake.closed.wait(60)
                return None
            if mode == "html":
                return self._send(200, "<html><body><h1>Proxy login</h1></body></html>", "text/html")
            if mode in {"empty", "null", "no_choices"}:
                answer = self._answer(body, "" if mode == "empty" else None)
                if mode == "no_choices":
                    answer["choices"] = []
                return self._send(200, answer)
            if mode == "malformed":
                return self._send(200, self._answer(body, "Sure! Here you go:\n* striped\n* furry"))
            prompt = body["messages"][-1]["content"]
            return self._send(200, self._answer(body, fake.responder(prompt)))

        def _answer(self, body: dict, text: str | None) -> dict:
            return {
                "id": "chatcmpl-test", "object": "chat.completion", "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }

    return Handler


@contextmanager
def serve():
    """Run a fake endpoint in a thread; yields (base_url, FakeLLM)."""
    fake = FakeLLM()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", fake
    finally:
        fake.closed.set()
        httpd.shutdown()
        httpd.server_close()


class FakeTextEncoder:
    """Deterministic bag-of-words text encoder: texts sharing words get similar vectors."""

    def __init__(self, dim: int = 64, fingerprint: str = "fake-text/64") -> None:
        self.dim = dim
        self.fingerprint = fingerprint

    def encode_text(self, texts):
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().replace("-", " ").split():
                w = w.strip(".,;:?!\"'")
                if w in {"a", "an", "the", "of", "is", "there", "with"}:
                    continue
                h = int(hashlib.md5(w.encode()).hexdigest(), 16)
                out[i, h % self.dim] += 1.0
                out[i, (h // self.dim) % self.dim] += 0.5
        return out + 1e-3
