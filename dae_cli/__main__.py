from dae_cli.cli import run

run()
