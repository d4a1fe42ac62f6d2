"""A stand-in for a remote R1 endpoint (DeepSeek's API and a GPU vLLM server cannot be reached
here): an OpenAI-compatible chat server on 127.0.0.1 that answers each problem with an R1-form
trace ending in the gold answer, and can inject faults in a scripted order."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from distill.recipe import R1_INSTRUCTION


class StandInR1:
    """faults: a queue of "500", "429", "hang", "malformed", "reset", "ok" consumed one per request."""

    def __init__(self, answers: dict[str, str], faults: list[str] | None = None, reasoning_field: bool = False,
                 hang_s: float = 5.0):
        self.answers = answers
        self.faults = deque(faults or [])
        self.reasoning_field = reasoning_field
        self.hang_s = hang_s
        self.requests: Counter = Counter()
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
                self._send(200, b'{"data": [{"id": "stand-in-r1"}]}')

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    fault = outer.faults.popleft() if outer.faults else "ok"
                    outer.requests[fault] += 1
                if fault == "500":
                    return self._send(500, b'{"error": "overloaded"}')
                if fault == "429":
                    return self._send(429, b'{"error": "slow down"}', {"Retry-After": "0.2"})
                if fault == "hang":
                    time.sleep(outer.hang_s)
                    return self._send(200, b"{}")
                if fault == "malformed":
                    return self._send(200, b'{"choices": [')
                if fault == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    return
                question = body["messages"][-1]["content"].replace(R1_INSTRUCTION, "").strip()
                answer = outer.answers.get(question, "0")
                reasoning = f"The question asks: {question} Working it out step by step gives {answer}."
                message = {"role": "assistant"}
                if outer.reasoning_field:
                    message.update(reasoning_content=reasoning, content=f"The answer is \\boxed{{{answer}}}.")
                else:
                    message["content"] = f"<think>\n{reasoning}\n</think>\n\nThe answer is \\boxed{{{answer}}}."
                out = {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 20, "completion_tokens": 30}}
                self._send(200, json.dumps(out).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "StandInR1":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
