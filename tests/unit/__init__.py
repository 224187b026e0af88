"""Pure tests: no database, no network; tables and hypothesis."""
