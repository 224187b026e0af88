"""Cohorts, their per-step figures, and every learner's answer to one step side by side.

Cohorts (F3): learners, progress and failures per cohort; `p`/`r` pause and resume a whole
cohort, `l` lists its learners, Enter shows its steps. Steps: delivered, replied and quiz-correct
rates per step with small bar charts (the figures `dripper report --cohort NAME --csv`
exports); Enter shows every answer to that step. Answers: one block per learner, the whole text
wrapped; Enter opens that learner's conversation.

Counting a large cohort takes about a second: figures load in a worker behind a loading
indicator, and a change in the database reloads them at most every few seconds (see
`tui.widgets.tables.refresh`).
"""

from tui.screens.cohorts.answers import AnswerItem, StepAnswersScreen
from tui.screens.cohorts.cohorts import CohortsScreen
from tui.screens.cohorts.steps import StepFiguresScreen

__all__ = ["AnswerItem", "CohortsScreen", "StepAnswersScreen", "StepFiguresScreen"]
