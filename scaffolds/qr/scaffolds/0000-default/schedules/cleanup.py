"""Scheduled job "cleanup": cron in UTC, or rate(...), hourly, daily, weekly, never."""

schedule = "0 3 * * *"  # every day at 03:00 UTC


def handler(job):
    print(f"cleanup run {job.job_id}")
