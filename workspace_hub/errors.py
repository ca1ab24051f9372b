"""The one error base class: every refusal the platform explains to a user derives from it.

``ws`` catches it once and prints its message; the message names the rule that
was broken and the fix.
"""


class WorkspaceHubError(Exception):
    """A refusal or failure with a message meant for the user."""
