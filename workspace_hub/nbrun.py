"""``python -m workspace_hub.nbrun train|serve NOTEBOOK``: how a notebook-built image runs.

(``load`` runs a serving notebook's startup cells and exits: ``ws build``'s trial run.)

**train** runs the notebook headless with papermill in the env's kernel.
papermill does not read the environment, so this runner does: each parameter
of the ``parameters`` cell (``epochs``) takes the env var of its upper-cased
name (``EPOCHS``), parsed as the parameter's type.  An env var declared in the
notebook's ``<stem>.algorithm.yaml`` with no matching parameter is an error in
the log before anything runs.  The executed notebook, outputs included, is
saved next to the model as ``<MODEL_DIR>/<stem>.executed.ipynb``.

**serve** follows the handbook's inference contract: ``GET /health`` and
``POST /<interface name>`` on ``$HOST:$PORT``.  The convention: the notebook's
cells run once at startup in one IPython namespace (so the model is loaded
once), except cells tagged ``client``; then the function named by
``interface.name`` answers each request, called with the JSON body as keyword
arguments.  A plain function, rather than Kernel-Gateway-style ``# POST``
cells, keeps requests off the kernel's single execution queue: health checks
and bad requests never wait behind a prediction, a bad request is a 400 before
user code runs, a ``ValueError`` from user code is a 400, and any other
exception is a 500 for that request only, logged with its traceback, while the
service stays up.  The server answers at once: ``/health`` and the interface
are 503 until the cells have run.  Bodies are JSON or form params (typed as the
interface declares), at most 10 MiB.  Calls into user code
are serialized with a lock, because notebook code is rarely thread-safe.

**Dynamic batching** (the contract's ``MAX_BATCH_SIZE`` over 1, and
``MAX_BATCH_WAIT_MS``): where the notebook also defines ``<name>_batch``, taking
a list of the calls' params and answering a list, calls that arrive together
(within the wait of the first, up to the size) go to one call of it, and each
gets its own answer.  If the batch call raises, or answers a list of another
length, each call of the batch is run alone, so a bad item fails only itself.
Without ``<name>_batch`` every call runs alone, as before.  The template's
``src/api.py`` does the same for ``model.predict_batch``; it keeps its own copy,
because a project made from the template imports nothing of the platform.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from .contract import DEFAULT_PORT, MODEL_DIR
from .notebook import (CLIENT_TAG, NotebookError, description_path, kernel_for, read_notebook, read_parameters,
                       unmatched_env_vars)

MAX_BODY = 10 * 1024**2  # the inference contract's body limit (413 past it)
BATCH_TIMEOUT = 60  # seconds a call waits for its batch's answer
JSON_TYPES = {"String": str, "Integer": int, "Float": (int, float), "Boolean": bool}


def _description(path: Path) -> dict:
    described = description_path(path)
    return yaml.safe_load(described.read_text(encoding="utf-8")) if described.exists() else {}


def parameters_from_env(path: Path, nb, environ=os.environ) -> tuple[dict, list[str]]:
    """The parameter values set by env vars, and the problems (bad values, env vars with no parameter)."""
    parameters = read_parameters(path, nb)
    values, problems = {}, []
    for p in parameters:
        if p.env_var in environ:
            try:
                values[p.name] = p.parse(environ[p.env_var])
            except ValueError as e:
                problems.append(str(e))
    for var in unmatched_env_vars(_description(path), parameters):
        problems.append(f"{var} is declared in {path.stem}.algorithm.yaml but the parameters cell has no "
                        f"{var.lower()!r}; the notebook would ignore it")
    return values, problems


def train(path: Path) -> int:
    import papermill

    nb = read_notebook(path)
    values, problems = parameters_from_env(path, nb)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return 2
    kernel, warning = kernel_for(path, nb, os.environ.get("WORKSPACE_ENV"))
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    model_dir = Path(os.environ.get("MODEL_DIR", MODEL_DIR))
    output = model_dir / f"{path.stem}.executed.ipynb"
    print(f"running {path.name} with {values or 'its defaults'}; the executed notebook goes to {output}",
          flush=True)
    try:
        papermill.execute_notebook(str(path), str(output), parameters=values, kernel_name=kernel,
                                   cwd=str(path.parent), log_output=True, progress_bar=False)
    except papermill.PapermillExecutionError as e:
        print(f"error: cell {e.cell_index} raised {e.ename}: {e.evalue} (see {output})", file=sys.stderr)
        return 1
    return 0


class Service:
    """The serving notebook loaded once; :meth:`call` runs its function for one request."""

    def __init__(self, path: Path):
        from IPython.core.interactiveshell import InteractiveShell

        nb = read_notebook(path)
        values, problems = parameters_from_env(path, nb)
        if problems:
            raise NotebookError(path, problems)
        interface = (_description(path).get("interface") or {})
        self.name = interface.get("name")
        self.params = interface.get("params") or []
        shell = InteractiveShell.instance()
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or CLIENT_TAG in cell.get("metadata", {}).get("tags", []):
                continue
            result = shell.run_cell(cell.source, silent=True)
            if not result.success:
                error = result.error_in_exec or result.error_before_exec
                raise NotebookError(path, [f"cell {index} raised {type(error).__name__}: {error}"])
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                shell.user_ns.update(values)  # env vars win over the defaults, as papermill's injected cell would
        self.function = shell.user_ns.get(self.name)
        if not callable(self.function):
            raise NotebookError(path, [f"the notebook defines no function {self.name!r} (interface.name)"])
        self.lock = threading.Lock()
        size, wait = _batching(path)
        batch = shell.user_ns.get(f"{self.name}_batch")
        if size > 1 and not callable(batch):
            print(f"MAX_BATCH_SIZE={size}, but the notebook defines no {self.name}_batch: each call runs alone",
                  file=sys.stderr, flush=True)
        self.batcher = Batcher(self, batch, size, wait) if size > 1 and callable(batch) else None

    def check(self, body) -> str | None:
        """Why a request body is refused (400), or None."""
        if not isinstance(body, dict):
            return "the body must be a JSON object of the interface's params"
        known = {p["name"] for p in self.params}
        if unknown := sorted(set(body) - known):
            return f"unknown param {unknown[0]!r}; this interface takes {', '.join(sorted(known))}"
        if missing := [p["name"] for p in self.params if p.get("required") and p["name"] not in body]:
            return f"missing required param {missing[0]!r}"
        for p in self.params:
            kind = p.get("type", "String")
            value = body.get(p["name"])
            if p["name"] in body and (not isinstance(value, JSON_TYPES[kind]) or
                                      (kind != "Boolean" and isinstance(value, bool))):
                return f"param {p['name']!r} must be a {kind}"
        return None

    def call(self, body: dict):
        if self.batcher is not None:
            return self.batcher.call(body)
        with self.lock:
            return self.function(**body)


def _batching(path: Path, environ=os.environ) -> tuple[int, float]:
    """``MAX_BATCH_SIZE`` and ``MAX_BATCH_WAIT_MS`` from the environment (1 and 5: off)."""
    try:
        size, wait = int(environ.get("MAX_BATCH_SIZE") or 1), float(environ.get("MAX_BATCH_WAIT_MS") or 5)
    except ValueError:
        raise NotebookError(path, ["MAX_BATCH_SIZE must be a whole number and MAX_BATCH_WAIT_MS a number of "
                                   "milliseconds, such as 8 and 5"]) from None
    if not 1 <= size <= 256 or not 0 <= wait <= 1000:
        raise NotebookError(path, ["MAX_BATCH_SIZE must be 1 to 256 and MAX_BATCH_WAIT_MS 0 to 1000"])
    return size, wait


class Batcher:
    """Collects concurrent calls into one call of the notebook's ``<name>_batch``."""

    def __init__(self, service: Service, batch, size: int, wait_ms: float):
        self.service, self.batch, self.size, self.wait = service, batch, size, wait_ms / 1000
        self.pending = queue.Queue()
        self.thread = threading.Thread(target=self.run, name="batcher", daemon=True)
        self.thread.start()

    def call(self, params: dict):
        """This call's own answer, or its own exception, once its batch is done."""
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
            self.answer(batch)

    def answer(self, batch: list) -> None:
        with self.service.lock:
            try:
                answers = list(self.batch([item["params"] for item in batch]))
                if len(answers) != len(batch):
                    raise ValueError(f"{self.service.name}_batch answered {len(answers)} items for {len(batch)}")
            except Exception:  # one bad item, or a batch function that fails: each alone, failing only itself
                traceback.print_exc()
                answers = None
            for index, item in enumerate(batch):
                try:
                    item["answer"] = answers[index] if answers is not None else self.service.function(**item["params"])
                except Exception as e:
                    item["error"] = e
                item["done"].set()


def from_form(params: list[dict], form: dict[str, str]) -> dict:
    """Form params arrive as text: type each as the interface declares it (a bad value is the caller's 400)."""
    kinds = {p["name"]: p.get("type", "String") for p in params}
    typed = {}
    for name, text in form.items():
        kind = kinds.get(name, "String")
        try:
            typed[name] = {"Integer": int, "Float": float, "String": str}[kind](text) if kind != "Boolean" \
                else {"true": True, "1": True, "false": False, "0": False}[text.lower()]
        except (ValueError, KeyError):
            typed[name] = text  # the check names the param and its type
    return typed


def serve(path: Path, host: str, port: int) -> None:
    """Answer the inference contract at once: 503 until the notebook has loaded, then its function."""
    loaded: dict[str, Service] = {}

    def load() -> None:
        try:
            loaded["service"] = Service(path)
        except Exception:  # a notebook that cannot load is a service that cannot start
            traceback.print_exc()
            os._exit(1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # the connection stays open for the next call (the platform reuses it)
        disable_nagle_algorithm = True  # an answer goes out as written, not after the caller's delayed ACK

        def log_message(self, format, *args):
            if not self.requestline.startswith("GET /health"):  # the platform asks every second
                super().log_message(format, *args)

        def answer(self, status: int, data) -> None:
            if not getattr(self, "body_read", False) and (self.headers.get("Content-Length", "0") != "0"
                                                          or "Transfer-Encoding" in self.headers):
                self.close_connection = True  # its body was not read: it must not be taken for the next call
            payload = json.dumps(data, ensure_ascii=False, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self):
            if self.path == "/health":  # a batcher that died answers nothing: the platform must replace this
                service = loaded.get("service")
                ready = service is not None and (service.batcher is None or service.batcher.thread.is_alive())
                self.answer(200 if ready else 503, {"status": "ok" if ready else "loading"})
            else:
                self.answer(404, {"error": "no such path; use GET /health or POST /<interface name>"})

        def do_POST(self):
            service = loaded.get("service")
            if service is None:
                return self.answer(503, {"error": "the model is loading; retry when GET /health answers 200"})
            if self.path.split("?")[0] != f"/{service.name}":
                return self.answer(404, {"error": f"no such interface; use POST /{service.name}"})
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self.answer(413, {"error": f"the body is over {MAX_BODY} bytes"})
            raw = self.rfile.read(length)
            self.body_read = True
            kind = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
            try:
                if kind == "application/json":
                    body = json.loads(raw or b"null")
                elif kind == "application/x-www-form-urlencoded":  # `curl -d '{"text": ...}'` sends JSON as this
                    body = _json_object(raw)
                    if body is None:
                        body = from_form(service.params, {k: v[0] for k, v in
                                                          urllib.parse.parse_qs(raw.decode()).items()})
                else:
                    return self.answer(415, {"error": "send application/json or form params"})
            except (ValueError, UnicodeDecodeError):
                return self.answer(400, {"error": "the body is not JSON"})
            if refusal := service.check(body):
                return self.answer(400, {"error": refusal})
            try:
                result = service.call(body)
            except ValueError as e:  # the function's own way to say the input is bad
                return self.answer(400, {"error": str(e)})
            except Exception as e:
                traceback.print_exc()
                return self.answer(500, {"error": f"{type(e).__name__}: {e}"})
            self.answer(200, result if isinstance(result, dict) else {"result": result})

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # many callers connecting at once wait, instead of being reset

    server = Server((host, port), Handler)
    threading.Thread(target=load, name="load", daemon=True).start()
    print(f"serving {path.name} on {host}:{port}", flush=True)
    server.serve_forever()


def _json_object(raw: bytes) -> dict | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("train", "serve", "load"):
        print("usage: python -m workspace_hub.nbrun train|serve|load NOTEBOOK", file=sys.stderr)
        return 2
    path = Path(argv[1]).resolve()
    # images run with a read-only root: kernels and IPython keep their runtime files in /tmp
    for variable in ("JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        os.environ.setdefault(variable, tempfile.mkdtemp(prefix=f"nbrun-{variable.lower()}-"))
    try:
        if argv[0] == "train":
            return train(path)
        if argv[0] == "load":  # `ws build`'s trial run of a serving notebook
            Service(path)
            return 0
        serve(path, os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", DEFAULT_PORT)))
    except NotebookError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
