"""The trainers' dashboard, driven through Textual's Pilot, with snapshots."""
