"""The command line: `mh-lightning SUBCOMMAND`, one module per subcommand."""
