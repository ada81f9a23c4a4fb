from dae_cli.cli.entry import run

run()
