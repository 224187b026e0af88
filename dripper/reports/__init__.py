"""Read models: figures about cohorts, learners and steps for the dashboard and `dripper report`.

Read-only, no UI code: async functions that return frozen dataclasses. Each runs a fixed
handful of aggregate queries (in `dripper.store.reports`), whatever the number of learners;
`learner_rows` pages, and only looks at the learners of its page after the first query.

Definitions, so that every screen tells the same story:

- A step is *delivered* when its first sending (delivery kind `step`) was sent; reminders and
  re-asks are not counted again. *Failed*, *uncertain* and *skipped* are the other outcomes of
  that first sending.
- A step is *due* when its first sending is in the outbox and its time has come (or it was
  sent). The planner puts steps in the outbox shortly before they are due, so `steps_due`
  counts what `dripper run` has planned so far; `steps_total` is the whole plan.
- A learner *replied* to a step when a message of theirs in the conversation of that
  enrollment is linked to the step (`Message.step_id`). A quiz or check-in is *answered* by
  its first recorded answer to the first asking (`QuizAnswer`, occurrence 0).
- An enrollment is *completed* when it is marked so, or when it is active, every step is in
  the outbox and none still waits to go out (nothing in dripper marks enrollments completed).
  Cancelled enrollments are left out of the planned counts and of progress; what was sent or
  answered before the cancellation still counts.
- Rates are fractions from 0 to 1, None when there is nothing to divide by.

Enrollments of one cohort may run different versions of its curriculum (`dripper apply` moves
them): steps are listed in the order of the newest version the cohort runs, followed by steps
only older versions have. Answers are read against the version the learner ran.
"""
