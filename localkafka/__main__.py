"""`python -m localkafka start|stop|status|fetch`: the same as `shopsync kafka ...`."""

from shopsync.cli import kafka

if __name__ == "__main__":
    kafka(prog_name="python -m localkafka")
