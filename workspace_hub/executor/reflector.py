"""One watch per kind, with a local cache: what :class:`~.kubernetes.KubernetesExecutor` knows of its pods and Jobs.

As KubeSpawner's reflector does: list once, then watch from the list's ``resourceVersion``; a watch that
ends (the server's timeout, a dropped connection) is resumed from the last ``resourceVersion`` seen, and a
``410 Gone`` (that version is too old) lists again.  Handles wait on :meth:`Reflector.wait_for`, a
condition the cache signals on every change, so a thousand runs cost one watch, not a thousand polls.

The watch itself is ``kubernetes_asyncio.watch.Watch``; only the resume and relist policy is ours,
because KubeSpawner's reflector is tied to its spawner's traits and its own event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading

log = logging.getLogger("workspace_hub.executor")


def _version(obj: dict) -> int:
    version = (obj.get("metadata") or {}).get("resourceVersion") or "0"
    return int(version) if version.isdigit() else 0


class Reflector:
    """The objects of one kind in *namespace* that match *selector*, kept current by a watch."""

    def __init__(self, kind: str, list_fn, namespace: str, selector: str, timeout: int = 300):
        self.kind, self.list_fn, self.namespace, self.selector, self.timeout = kind, list_fn, namespace, selector, timeout
        self.objects: dict[str, dict] = {}
        self.resource_version: str | None = None
        self.changed = threading.Condition()
        self.lists = self.watches = 0  # requests made, for the log and the tests
        self._task: asyncio.Task | None = None

    # -- for threads ---------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, dict]:
        with self.changed:
            return dict(self.objects)

    def get(self, name: str) -> dict | None:
        with self.changed:
            return self.objects.get(name)

    def seen(self, obj: dict) -> None:
        """Put what a create or a patch returned into the cache now, unless the watch brought a newer one: a
        handle made from it must not take the watch's delay for a deletion."""
        name = obj["metadata"]["name"]
        with self.changed:
            known = self.objects.get(name)
            if known is None or _version(known) <= _version(obj):
                self.objects[name] = obj
                self.changed.notify_all()

    def wait_for(self, predicate, timeout: float) -> bool:
        """Wait until *predicate()* holds (checked on each change of the cache), at most *timeout* seconds."""
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    # -- on the executor's loop -------------------------------------------------------------------------
    async def start(self) -> None:
        """List (an unreachable server or a refusal raises here), then watch in the background."""
        await self._list()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"reflector-{self.kind}")

    def _matches(self, obj: dict) -> bool:  # a server that ignores the selector does not fill the cache
        key, _, value = self.selector.partition("=")
        return ((obj.get("metadata") or {}).get("labels") or {}).get(key) == value

    def _replace(self, objects: dict[str, dict]) -> None:
        with self.changed:
            self.objects = objects
            self.changed.notify_all()

    def _apply(self, kind: str, obj: dict) -> None:
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            return
        with self.changed:
            if kind == "DELETED" or not self._matches(obj):
                self.objects.pop(name, None)
            else:
                self.objects[name] = obj
            self.changed.notify_all()

    async def _list(self) -> None:
        self.lists += 1
        response = await self.list_fn(self.namespace, label_selector=self.selector, _preload_content=False)
        data = json.loads(await response.read())
        self._replace({o["metadata"]["name"]: o for o in data.get("items") or [] if self._matches(o)})
        self.resource_version = (data.get("metadata") or {}).get("resourceVersion")

    async def _watch(self) -> None:
        from kubernetes_asyncio import watch

        self.watches += 1
        kwargs = {"label_selector": self.selector, "timeout_seconds": self.timeout,
                  "_request_timeout": self.timeout + 10}
        if self.resource_version:
            kwargs["resource_version"] = self.resource_version
        async with watch.Watch(return_type="object").stream(self.list_fn, self.namespace, **kwargs) as stream:
            async for event in stream:
                obj = event["raw_object"]
                version = (obj.get("metadata") or {}).get("resourceVersion")
                if version:
                    self.resource_version = version
                if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    self._apply(event["type"], obj)

    async def _run(self) -> None:
        from kubernetes_asyncio.client.exceptions import ApiException

        delay = 0.5
        while True:
            try:
                if self.resource_version is None:
                    await self._list()
                await self._watch()  # returns when the server ends it: resume from the last version
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except ApiException as e:
                if e.status == 410:  # that version is gone from the server's window: list again
                    log.info("the %s watch expired (410 Gone); listing again", self.kind)
                    self.resource_version = None
                    continue
                log.warning("the %s watch failed: %s %s; retrying in %.1f s", self.kind, e.status, e.reason, delay)
            except Exception as e:  # a dropped connection, an unreachable server
                log.warning("the %s watch failed: %r; retrying in %.1f s", self.kind, e, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


__all__ = ["Reflector"]
