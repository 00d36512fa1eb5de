"""Built-in event sources, one module per kind."""
