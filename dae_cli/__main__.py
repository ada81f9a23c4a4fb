from dae_cli.cli.commands import run

run()
