"""The library's one refusal: an HTTP status, a stable code, and a message naming the rule and the fix."""

from __future__ import annotations

from workspace_hub.errors import WorkspaceHubError


class LibraryError(WorkspaceHubError):
    """A refused request: HTTP *status*, a stable *code*, a message naming the rule and the fix."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def as_dict(self) -> dict:
        return {"error": {"status": self.status, "code": self.code, "message": self.message, "field": self.field}}
