"""User-facing errors: each carries one line that names the problem and the fix."""


class UserError(Exception):
    """A mistake the user can fix (bad path, bad config, wrong model). Printed as one line, no traceback."""


class ModelError(UserError):
    """A model file is missing, corrupt or does not match its manifest."""


class RuntimeUnavailable(UserError):
    """No usable TFLite runtime could be imported."""
