"""The engine behind `dripper run`: the planner, the dispatcher, their wake-ups, one worker."""
