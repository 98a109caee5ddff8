"""The ``sdnet`` command line (Typer): a thin shell over the library."""
