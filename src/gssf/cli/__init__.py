"""The ``gssf`` command line: a thin layer over the library (see :mod:`gssf.cli.main`)."""
