"""Reminders: natural-language time phrases, the ReminderService (APScheduler clock, trigger log, relay stream)."""
