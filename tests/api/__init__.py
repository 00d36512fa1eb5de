"""Tests of ``twinengine.api`` (a package, so test file names may repeat in other folders)."""
