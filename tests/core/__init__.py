"""Tests of ``twinengine.core`` (a package, so test file names may repeat in other folders)."""
