"""What a learner reads: a step composed for one learner, Markdown rendered per channel. Pure."""
