"""Serve the model over HTTP, following the inference contract.

- it answers at once; ``GET /health`` and the interface are 503 until the model is loaded, then 200;
- ``POST /{{ cookiecutter.interface_name }}``: a JSON body or form params (at most 10 MiB, else 413;
  other content types 415), answered with a JSON prediction;
- bad input (a ``ValueError`` from ``model.predict``) is a 400 with a message, any other exception a
  500, and the service stays up; listens on $HOST:$PORT (default 0.0.0.0:8080);
- dynamic batching, off unless $MAX_BATCH_SIZE is over 1: calls that arrive together (within
  $MAX_BATCH_WAIT_MS of the first) go to one ``model.predict_batch`` call, and each gets its own answer; if
  that call fails, each item is predicted alone, so a bad item fails only itself.

    python src/api.py
"""

import json
import logging
import os
import queue
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import contract
import model

INTERFACE = "{{ cookiecutter.interface_name }}"
MAX_BODY = 10 * 1024**2
MAX_BATCH_SIZE = int(os.environ.get("MAX_BATCH_SIZE", "1"))  # 1: every call alone
MAX_BATCH_WAIT_MS = float(os.environ.get("MAX_BATCH_WAIT_MS", "5"))
BATCH_TIMEOUT = 60  # seconds a call waits for its batch
log = logging.getLogger("api")


class Batcher:
    """Collects concurrent calls into one ``model.predict_batch(model, [params, ...])`` call."""

    def __init__(self, size: int, wait_ms: float):
        self.size, self.wait = size, wait_ms / 1000
        self.pending = queue.Queue()
        self.thread = threading.Thread(target=self.run, name="batcher", daemon=True)
        self.thread.start()

    def predict(self, loaded, params: dict) -> dict:
        """This call's own answer (or its own exception), once its batch is done."""
        item = {"params": params, "done": threading.Event()}
        self.pending.put(item)
        if not item["done"].wait(BATCH_TIMEOUT):
            raise TimeoutError(f"the batch did not answer within {BATCH_TIMEOUT} s")
        if "error" in item:
            raise item["error"]
        return item["answer"]

    def run(self) -> None:
        while True:
            batch = [self.pending.get()]
            deadline = time.monotonic() + self.wait
            while len(batch) < self.size and (left := deadline - time.monotonic()) > 0:
                try:
                    batch.append(self.pending.get(timeout=left))
                except queue.Empty:
                    break
            self.answer(Handler.loaded, batch)

    @staticmethod
    def answer(loaded, batch: list) -> None:
        try:
            answers = model.predict_batch(loaded, [item["params"] for item in batch])
            if len(answers) != len(batch):
                raise ValueError("predict_batch must answer each item")
        except Exception:  # one bad item, or no predict_batch: each alone, so each fails only itself
            answers = None
        for i, item in enumerate(batch):
            try:
                item["answer"] = answers[i] if answers is not None else model.predict(loaded, item["params"])
            except Exception as e:
                item["error"] = e
            item["done"].set()


BATCHER = Batcher(MAX_BATCH_SIZE, MAX_BATCH_WAIT_MS) if MAX_BATCH_SIZE > 1 else None


class Handler(BaseHTTPRequestHandler):
    loaded = None  # set once at startup
    protocol_version = "HTTP/1.1"  # the connection stays open for the next call (the platform reuses it)
    disable_nagle_algorithm = True  # an answer goes out as written, not after the caller's delayed ACK

    def reply(self, status: int, body: dict) -> None:
        if not getattr(self, "body_read", False) and (self.headers.get("Content-Length", "0") != "0"
                                                      or "Transfer-Encoding" in self.headers):
            self.close_connection = True  # its body was not read: it must not be taken for the next call
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":  # a batcher that died answers nothing: the platform must replace this
            ready = self.loaded is not None and (BATCHER is None or BATCHER.thread.is_alive())
            self.reply(200 if ready else 503, {"status": "ok" if ready else "loading"})
        else:
            self.reply(404, {"error": f"no such path; use GET /health or POST /{INTERFACE}"})

    def do_POST(self):
        if self.loaded is None:
            return self.reply(503, {"error": "the model is loading; retry when GET /health answers 200"})
        if self.path.split("?")[0] != f"/{INTERFACE}":
            return self.reply(404, {"error": f"no such interface; use POST /{INTERFACE}"})
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self.reply(413, {"error": f"the body is over {MAX_BODY} bytes"})
        body = self.rfile.read(length)
        self.body_read = True
        kind = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        try:
            if kind == "application/json":
                params = json.loads(body or b"{}")
                if not isinstance(params, dict):
                    raise ValueError("the JSON body must be an object of params")
            elif kind == "application/x-www-form-urlencoded":  # `curl -d '{"text": ...}'` sends JSON as this
                params = json_object(body) or {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
            else:
                return self.reply(415, {"error": "send application/json or form params"})
            prediction = BATCHER.predict(self.loaded, params) if BATCHER else model.predict(self.loaded, params)
        except ValueError as e:
            return self.reply(400, {"error": str(e)})
        except Exception:
            log.exception("prediction failed")
            return self.reply(500, {"error": "the model failed on this input; see the service log"})
        self.reply(200, prediction)

    def log_message(self, format, *args):
        if not self.requestline.startswith("GET /health"):  # the platform asks every second
            log.info("%s %s", self.address_string(), format % args)


def json_object(body: bytes) -> dict | None:
    """*body* as a JSON object, or None if it is not one."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class Server(ThreadingHTTPServer):
    request_queue_size = 128  # many callers connecting at once wait, instead of being reset


def load() -> None:
    try:
        Handler.loaded = model.load(contract.model_dir())
    except Exception:  # a model that cannot load is a service that cannot start
        log.exception("loading the model failed")
        os._exit(1)


def serve(host: str = "0.0.0.0", port: int = 8080) -> ThreadingHTTPServer:
    """The server, answering at once; the model loads in the background (503 until then)."""
    Handler.loaded = None
    server = Server((host, port), Handler)
    threading.Thread(target=load, name="load", daemon=True).start()
    return server


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = serve(os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "8080")))
    log.info("serving POST /%s on %s:%s", INTERFACE, *server.server_address)
    server.serve_forever()
