"""Trainers away from the dashboard: their own Telegram chat with the bot, and notifications.

- `roster`: adding trainers, who follows which cohort, quiet hours, single-use invite links
  that bind a trainer's chat (never a learner's)
- `notices`: which new learner messages a trainer hears of, and the notification's text (pure)
- `notifier`: the loop that batches them per trainer and sends them by Telegram or email
"""
