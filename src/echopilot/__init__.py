"""EchoPilot: a self-hosted operations platform for AI-services businesses."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("echopilot")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"
