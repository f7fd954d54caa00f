"""A stand-in for a judge server we run as a child (llama.cpp's or vLLM's), misbehaving on cue,
for tests/test_judge_server_faults.py. Run as `python fake_judge_server.py [server flags]`: it
reads --port from the flags it is given and ignores the rest.

$FAKE_MODE is `FAULT` or `FAULT-after-N` (answer N chat completions well, then the fault on every
later one; the local judge's start-up check is the first), FAULT one of:
  ok           no fault: every chat completion is answered (one token, "A", with top logprobs)
  segv         dies of SIGSEGV on a chat completion
  exit         sends the status line and half a body, then exits with code 3
  hang         never answers a chat completion
  garbage      answers with a NaN logprob and no tokens
  never-ready  /v1/models answers 503 forever
$FAKE_PIDS: a file it appends its pid and its helper's to (the helper is a child process that
sleeps, as a real server's worker would: it must not outlive the run either)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = os.environ.get("FAKE_MODE", "ok")
FAULT, _, AFTER = MODE.partition("-after-")
answered = 0


def completion(model: str, logprob: float = -0.05, tokens: int = 1) -> dict[str, object]:
    top = [{"token": "A", "logprob": logprob}, {"token": "B", "logprob": -3.0}]
    return {
        "id": "fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "A" if tokens else ""},
                "finish_reason": "stop",
                "logprobs": {
                    "content": [{"token": "A", "logprob": logprob, "top_logprobs": top}]
                    if tokens
                    else []
                },
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": tokens, "total_tokens": 20 + tokens},
    }


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt: str, *args: object) -> None:
        print("fake server:", fmt % args, file=sys.stderr, flush=True)

    def send_json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if FAULT == "never-ready":
            self.send_json(503, {"error": "loading model"})
        else:
            self.send_json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

    def do_POST(self) -> None:
        global answered
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        fault = FAULT if answered >= int(AFTER or 0) else "ok"
        print(f"fake server: request {answered + 1}: {fault}", file=sys.stderr, flush=True)
        if fault == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
            time.sleep(3600)  # the signal is asynchronous: never answer before it lands
        elif fault == "exit":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"id": "fake", "choi')
            self.wfile.flush()
            os._exit(3)
        elif fault == "hang":
            time.sleep(3600)
        answered += 1
        if fault == "garbage":
            self.send_json(200, completion(body["model"], logprob=float("nan"), tokens=0))
        else:
            self.send_json(200, completion(body["model"]))


def main() -> None:
    args = sys.argv[1:]
    port = int(args[args.index("--port") + 1])
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    if pids := os.environ.get("FAKE_PIDS"):
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\n{helper.pid}\n")
    print(f"fake server: mode {MODE} on port {port}", file=sys.stderr, flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
