"""eagle_agent: the measurement agent that joins an Eagle server and times models on its device."""

from latbench import __version__

__all__ = ["__version__"]
