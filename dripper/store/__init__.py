"""Every SQL statement dripper runs, one module per aggregate, with the dialect helpers."""
