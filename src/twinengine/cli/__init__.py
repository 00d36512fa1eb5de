"""The ``twin`` command line (Typer + Rich); thin: it calls the modules' public functions."""
