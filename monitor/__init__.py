"""Border traffic monitor: railcars and vessels at the North Korea-Russia border.

The library is the product; ``monitor.cli`` is a thin typer front over it.

Pipeline (one module per arrow)::

    monitor.aoi -> monitor.scenes -> monitor.imagery -> monitor.detect
      -> monitor.store -> monitor.baseline -> monitor.alerts
"""

__version__ = "0.1.0"

from monitor.errors import MonitorError, InputError  # noqa: E402

__all__ = ["__version__", "MonitorError", "InputError"]
