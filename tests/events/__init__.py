"""Tests of ``twinengine.events`` (a package, so test file names may repeat in other folders)."""
