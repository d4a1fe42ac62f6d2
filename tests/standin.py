"""A stand-in for a remote R1 endpoint (DeepSeek's API and a GPU vLLM server cannot be reached
here): an OpenAI-compatible chat server on 127.0.0.1 that answers each problem with an R1-form
trace ending in the gold answer, whole or streamed as server-sent events (as vLLM does when the
request says `stream: true`), lists its models at /v1/models, and can inject faults in a scripted order."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from distill.r1 import R1_INSTRUCTION


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # clients that time out close early: expected
        pass


class StandInR1:
    """faults: a queue consumed one per request: "500", "503", "429" (with Retry-After), "hang"
    (nothing for `hang_s`), "stall" (a stream that sends its first token, then nothing for `hang_s`),
    "malformed" (torn JSON), "nochoices" (JSON without choices), "reset" (TCP RST), "400echo"
    (a 400 whose body echoes the Authorization header, as some APIs do), "400" (a content refusal),
    "400ctx" (a prompt over the context, in vLLM's words), "401", "404", "ok".
    `delay_s` slows every answer (a busy teacher); `seen_auth` keeps the Authorization headers;
    `bodies` the request bodies; `models` are the names /v1/models lists; `reasoning` replaces the
    reasoning text (which by default restates the question)."""

    def __init__(self, answers: dict[str, str], faults: list[str] | None = None, reasoning_field: bool = False,
                 hang_s: float = 5.0, delay_s: float = 0.0, retry_after: str = "0.2",
                 models: list[str] | None = None, reasoning: str | None = None):
        self.answers = answers
        self.faults = deque(faults or [])
        self.reasoning_field = reasoning_field
        self.hang_s = hang_s
        self.delay_s = delay_s
        self.retry_after = retry_after
        self.reasoning = reasoning  # a fixed reasoning text instead of one that restates the question
        self.requests: Counter = Counter()
        self.seen_auth: list[str] = []
        self.bodies: list[dict] = []
        self.models = models or ["stand-in-r1"]
        self.log: list[tuple[float, str]] = []  # (time.monotonic(), fault) of each request
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, body: bytes, headers: dict | None = None):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                with outer.lock:
                    outer.requests["GET " + self.path] += 1
                self._send(200, json.dumps({"object": "list", "data": [{"id": m} for m in outer.models]}).encode())

            def _events(self, chunks: list[dict], stall_after: int | None = None):
                """Server-sent events, one chunk each, then [DONE]; `stall_after` chunks then silence."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for k, chunk in enumerate(chunks):
                    if k == stall_after:
                        time.sleep(outer.hang_s)
                        return
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")

            def do_POST(self):
                with outer.lock:
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    self._post()
                finally:
                    with outer.lock:
                        outer.in_flight -= 1

            def _post(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    fault = outer.faults.popleft() if outer.faults else "ok"
                    outer.requests[fault] += 1
                    outer.log.append((time.monotonic(), fault))
                    outer.seen_auth.append(self.headers.get("Authorization", ""))
                    outer.bodies.append(body)
                if fault in ("500", "503"):
                    return self._send(int(fault), b'{"error": "overloaded"}')
                if fault == "429":
                    return self._send(429, b'{"error": "slow down"}', {"Retry-After": outer.retry_after})
                if fault == "401":
                    return self._send(401, b'{"error": "invalid key"}')
                if fault == "400":
                    return self._send(400, b'{"error": {"message": "the request was refused by the content policy"}}')
                if fault == "400ctx":
                    return self._send(400, b'{"error": {"message": "This model\'s maximum context length is 32768 '
                                           b'tokens. However, you requested 40000 tokens."}}')
                if fault == "404":
                    return self._send(404, b'{"error": {"message": "The model does not exist."}}')
                if fault == "400echo":
                    echo = json.dumps({"error": f"bad request with {self.headers.get('Authorization')}"})
                    return self._send(400, echo.encode())
                if fault == "nochoices":
                    return self._send(200, b'{"object": "chat.completion"}')
                if fault == "hang":
                    time.sleep(outer.hang_s)
                    return self._send(200, b"{}")
                if fault == "malformed":
                    return self._send(200, b'{"choices": [')
                if fault == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    return
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                question = body["messages"][-1]["content"].replace(R1_INSTRUCTION, "").strip()
                answer = outer.answers.get(question, "0")
                reasoning = outer.reasoning or f"The question asks: {question} Working it out step by step gives {answer}."
                message = {"role": "assistant"}
                if outer.reasoning_field:
                    message.update(reasoning_content=reasoning, content=f"The answer is \\boxed{{{answer}}}.")
                else:
                    message["content"] = f"<think>\n{reasoning}\n</think>\n\nThe answer is \\boxed{{{answer}}}."
                usage = {"prompt_tokens": 20, "completion_tokens": 30}
                if body.get("stream"):
                    return self._stream(message, usage, stall_after=2 if fault == "stall" else None)
                out = {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": usage}
                self._send(200, json.dumps(out).encode())

            def _stream(self, message: dict, usage: dict, stall_after: int | None):
                """The message cut into a few deltas, as a server streams tokens."""
                chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}]
                for field in ("reasoning_content", "content"):
                    text = message.get(field) or ""
                    step = max(1, len(text) // 4)
                    chunks += [{"choices": [{"index": 0, "delta": {field: text[i:i + step]}, "finish_reason": None}]}
                               for i in range(0, len(text), step)]
                chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                chunks.append({"choices": [], "usage": usage})
                self._events(chunks, stall_after)

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @property
    def posts(self) -> int:
        """Chat requests answered in any way (GETs of /v1/models not counted)."""
        return sum(n for k, n in self.requests.items() if not k.startswith("GET "))

    def __enter__(self) -> StandInR1:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
