"""Enrollments: learners on a drip, in cohorts; pausing, moving, editing and their quiz answers."""
