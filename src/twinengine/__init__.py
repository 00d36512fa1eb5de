"""TwinEngine: an open-source Digital Twin Engine.

The package is split into modules that talk to each other only through their public
``__init__`` interfaces: ``core`` (settings, database, object store, errors),
``workflows`` (CWL engine, scheduler, executors) and, as they land, ``provenance``,
``events``, ``ai``, ``qa``, ``fusion``, ``notify``, ``api`` and ``cli``.
"""

__version__ = "0.1.0"
