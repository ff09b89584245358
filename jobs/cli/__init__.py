"""The voiplake command line: one module per command group."""
