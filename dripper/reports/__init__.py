"""Read models: figures about cohorts, learners and steps for the dashboard and the CLI."""
