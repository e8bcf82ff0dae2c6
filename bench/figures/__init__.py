"""One module per figure of ``shopsync bench`` (each exposes ``FIGURE: bench.suite.Figure``)."""
