"""One FastAPI router per module: access, workflows, runs, provenance, operations."""
