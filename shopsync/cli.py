"""placeholder"""
import click

@click.group()
def kafka() -> None:
    pass
def main() -> None:
    pass
