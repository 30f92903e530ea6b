"""The one family of user mistakes: every error a user can cause subclasses ``JaxferError``, so the CLI
turns all of them, and nothing else, into one line on stderr and exit status 2."""


class JaxferError(ValueError):
    """A user mistake (a bad config, env id, checkpoint or layer copy); the message is one line."""


class ConfigError(JaxferError):
    """A user mistake in a config or a command's options: the message is one line naming the problem."""


class BackendError(JaxferError):
    """A run the devices or processes at hand cannot execute; the message is one line."""
