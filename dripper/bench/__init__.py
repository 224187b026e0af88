"""`dripper bench ...`: measurements on this machine, each printed as one JSON line."""
