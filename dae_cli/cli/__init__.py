"""The `dae` command line: the commands (`commands`), the flags made from the config schema
(`options`), what is printed and how (`output`), and shell completion (`completion`)."""
