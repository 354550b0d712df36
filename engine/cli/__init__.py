"""The `coopflow` command line: `engine.cli.main` holds the click commands."""
