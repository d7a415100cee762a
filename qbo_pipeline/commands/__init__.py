"""Handlers of the `qbo-pipeline` subcommands that outgrew cli.py, one module per group.

Each module has `add_parser(commands)` registering its subcommands with their handlers;
`qbo_pipeline.cli` owns parsing, logging and the one-line error contract.
"""
