"""dripper: post-course microlearning drips over Telegram and email, with a shared trainer inbox."""

__version__ = "0.1.0"
