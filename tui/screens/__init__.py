"""The dashboard's screens: one module per area (inbox, conversation, learners, cohorts, help)."""
