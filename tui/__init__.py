"""The trainers' Textual dashboard. It imports dripper; dripper never imports it."""
